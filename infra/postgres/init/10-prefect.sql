-- Runs once, when the postgres volume is first initialised: Prefect's own database beside MLflow's.
CREATE DATABASE prefect;
