"""The long-running core (a deployment, its cloud link and shadow sync) and its control endpoint."""
