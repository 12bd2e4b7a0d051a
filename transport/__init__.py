"""Storage I/O both ends share: clients (`clients`), dead letters sent (`deadletter`), the
queue's backlog read (`backlog`), which errors are the storage's (`errors`)."""
