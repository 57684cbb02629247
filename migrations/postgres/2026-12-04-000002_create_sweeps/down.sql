DROP TABLE refresh_queue;
DROP TABLE sweep_leases;
DROP TABLE sync_state;
DROP TABLE sweep_chains;
DROP TABLE sweep_runs;
