"""``qcg.pilotjob.executor_api.templates``: task templates."""
