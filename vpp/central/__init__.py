"""Central service: the aggregator across towns (fleet planning fanned out per town, the bus side)."""
