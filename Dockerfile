# The Tidings image: one image for every role (dispatcher, admin, one-shot topic setup).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY producer ./producer
COPY dispatcher ./dispatcher
COPY admin ./admin
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 tidings \
    && mkdir -p /var/lib/tidings && chown tidings /var/lib/tidings
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER tidings
ENTRYPOINT ["tidings"]
CMD ["--help"]
