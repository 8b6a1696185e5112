"""The runtime of the stateful agents: state owned per input partition, checkpointed, output exactly
once (`partition_state`), a partition's lifecycle (`ownership`), the output sequence rule
(`exactly_once`), reads of partition logs (`partition_log`) and the broker's known defects
(`broker_defects`). It knows Kafka (aiokafka) but no agent, no configuration file and no CLI: the agents
wire their steps into it, never the other way round."""
