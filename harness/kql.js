// Kusto's own parser and semantic analyzer (@kusto/language-service-next, the library Azure
// Monitor's query editors use) on queries against declared tables. Reads
// {"tables": {name: "(col:type, ...)"}, "queries": [text, ...]} on stdin; writes, per query,
// {"errors": [message, ...], "columns": {name: type}} (the result's schema).
require('@kusto/language-service-next/bridge.min');
require('@kusto/language-service-next/Kusto.Language.Bridge.min');

const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const K = Kusto.Language;
const tables = Object.entries(input.tables).map(
  ([name, schema]) => new K.Symbols.TableSymbol.$ctor7(name, schema, null));
const globals = K.GlobalState.Default.WithDatabase(new K.Symbols.DatabaseSymbol.ctor('db', tables));

const results = input.queries.map((text) => {
  const code = K.KustoCode.ParseAndAnalyze(text, globals);
  const diagnostics = code.GetDiagnostics();
  const errors = [];
  for (let i = 0; i < diagnostics.Count; i++) {
    const d = diagnostics.getItem(i);
    if (d.Severity === 'Error') errors.push(d.Message);
  }
  const columns = {};
  const result = code.ResultType;
  if (result && result.Columns) {
    for (let i = 0; i < result.Columns.Count; i++) {
      const c = result.Columns.getItem(i);
      columns[c.Name] = c.Type.Name;
    }
  }
  return { errors, columns };
});
process.stdout.write(JSON.stringify(results));
