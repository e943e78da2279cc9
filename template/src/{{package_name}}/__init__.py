"""A FastAPI service whose CORS policy is configured per environment."""
