-- Home Assistant MQTT discovery, opted into per account.
ALTER TABLE users ADD COLUMN ha_discovery INTEGER NOT NULL DEFAULT 0;
