# Tessera container image.
#
#   docker build -t tessera .
#   docker run --rm -p 8080:8080 -v "$PWD/tessera.toml:/etc/tessera/tessera.toml:ro" tessera
#
# Two stages: Debian 12's own Rust (1.63) is older than the crate's minimum (rust-version 1.92), so the build runs
# on the official rust:1-bookworm image (same Debian release, so the same GStreamer 1.22 the binary links against);
# the runtime is debian:12-slim with only the GStreamer plugins Tessera uses.

# ---- build ------------------------------------------------------------------------------------------------------------
FROM rust:1-bookworm AS build
WORKDIR /src
# Same system packages as development and CI (scripts/setup is idempotent and needs no prompts).
COPY scripts/setup scripts/setup
RUN bash scripts/setup && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cargo build --release --locked && cp target/release/tessera /usr/local/bin/tessera

# ---- runtime ----------------------------------------------------------------------------------------------------------
FROM debian:12-slim
# Runtime only, no -dev packages. GStreamer plugins: base (compositor, audiomixer, videoconvertscale, videotestsrc),
# good (flvmux, souphttpsrc, pngdec/jpegdec, gdkpixbuf, videocrop, lamemp3enc), bad (rtmp2src/rtmp2sink,
# h264parse/h265parse, x265enc), ugly (x264enc), libav (avdec_h264/h265, avdec_aac/mp3, avenc_aac), x (textoverlay,
# for labels); a font for labels; CA certificates for https URLs. Tessera demuxes FLV itself and draws rounded
# corners on the compositor's output: it needs no plugin of its own.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        gstreamer1.0-plugins-base \
        gstreamer1.0-plugins-good \
        gstreamer1.0-plugins-bad \
        gstreamer1.0-plugins-ugly \
        gstreamer1.0-libav \
        gstreamer1.0-x \
        fonts-dejavu-core \
        ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home-dir /var/lib/tessera --create-home tessera \
    && mkdir -p /etc/tessera \
    && printf '%s\n' \
        '# Default container configuration: listen on all interfaces. Mount your own file over this one to' \
        '# point ingest.pull_url / egress.push_url at your RTMP server (docs/configuration.md lists every key).' \
        '[server]' \
        'listen = "0.0.0.0:8080"' \
        '# The native API is reachable from other machines: it needs tokens. Mount a file of them (one per' \
        '# line, "ro:" before a read-only one); the node refuses to start without it.' \
        'token_file = "/etc/tessera/tokens"' \
        '[store]' \
        '# Accepted tasks survive restarts here (mount a volume on /var/lib/tessera to keep them).' \
        'path = "/var/lib/tessera/tessera-state.db"' \
        > /etc/tessera/tessera.toml

COPY --from=build /usr/local/bin/tessera /usr/local/bin/tessera

USER tessera
# GStreamer keeps its plugin registry cache under $HOME/.cache.
ENV HOME=/var/lib/tessera
EXPOSE 8080
ENTRYPOINT ["tessera", "serve", "--config", "/etc/tessera/tessera.toml"]
