"""Helpers more than one test package uses: hostile-input strategies, the golden values,
the ingest function as the host runs it, the end-to-end pipeline on Azurite, the metric
names, the AKS fixture's expectations, the image build. Test modules import from here,
never from each other."""
