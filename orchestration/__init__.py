"""Definitions, jobs, schedules and sensors: the only layer that knows about all the others."""
