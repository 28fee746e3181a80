# The worker and the API (the same image, two commands). See docker-compose.yml.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md worker.py ./
COPY domain domain
COPY workflows workflows
COPY activities activities
COPY api api
COPY temporal_automations temporal_automations
RUN pip install --no-cache-dir .
# No root at run time; nothing here writes to disk.
USER nobody
EXPOSE 4200
# `automations` handles SIGTERM itself (graceful stop on `docker stop`, also as PID 1).
CMD ["automations", "api", "--host", "0.0.0.0"]
