-- Where the other nodes pass a device's MQTT connection for a user this node serves
-- (host:port; empty until the node's broker listens).
ALTER TABLE cluster_nodes ADD COLUMN mqtt TEXT NOT NULL DEFAULT '';
