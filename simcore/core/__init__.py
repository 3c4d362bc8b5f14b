"""One running core: IPC, the router and its work queue, workers, isolation, logs."""
