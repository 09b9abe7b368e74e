"""The building's MQTT broker: state, availability, alarms, discovery and commands."""
