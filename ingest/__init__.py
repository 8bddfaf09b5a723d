"""Central consumer: MQTT → validate → reading stores; quarantine."""
