"""The real-time path: a use case's events through a broker into the feature store.

- `replay.replay_events`: the operational systems' stand-in, publishing source rows as events;
- `processor.StreamProcessor`: the long-running service writing them to the Feast online store and
  the offline stream sink, exactly once, dead-lettering what breaks the contract;
- `service.running_processor`: the processor as a process group of its own, until a block exits;
- `reconcile.reconcile_day`: the stream's values of a day against the batch's dbt marts.
"""
