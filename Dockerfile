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
    && mkdir -p /var/lib/atelier /opt/atelier/weights \
    && chown atelier:atelier /var/lib/atelier

WORKDIR /opt/atelier

# Dependencies first, from pyproject.toml alone, so a code change does not reinstall TensorFlow.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The project, installed in place: migrations and bundled samples are read from /opt/atelier.
COPY . .
RUN pip install --no-deps -e .

# Optional: `--build-arg VGG19_WEIGHTS=bake` puts the ImageNet VGG19 weights in the image's Keras
# cache (~/.keras/models; needs network during the build, checks the MD5). Otherwise provide them
# at run time: docs/operations.md, "VGG19 weights".
ARG VGG19_WEIGHTS=mount
USER atelier
RUN if [ "$VGG19_WEIGHTS" = "bake" ]; then \
        python -c "from workers.nst.vgg import resolve_weights; print(resolve_weights('imagenet'))"; \
    fi

CMD ["atelier", "--help"]
