# The worker and the API (the same image, two commands). See docker-compose.yml.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md worker.py ./
COPY domain domain
COPY workflows workflows
COPY activities activities
COPY api api
COPY automations automations
RUN pip install --no-cache-dir .
USER nobody
EXPOSE 4200
CMD ["automations", "api", "--host", "0.0.0.0"]
