-- Which instance has work for which model group, as of its last heartbeat:
-- a deployment's max_parallel_requests is split between the instances
-- present for its group. An instance with no work has no rows.
CREATE TABLE fleet_presence (
    instance     TEXT   NOT NULL,
    model        TEXT   NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    PRIMARY KEY (model, instance)
);
