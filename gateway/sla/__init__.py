"""When a request is due: the policy, the working calendar, deadlines and the SLA report."""
