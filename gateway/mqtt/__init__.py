"""MQTT (aiomqtt 2.x): availability, one event per decision, states, commands, Home
Assistant discovery, and a fleet's shared Retry-After. See ``bridge.MqttBridge``."""
