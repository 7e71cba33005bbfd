#!/bin/sh
# Build helper: run a command with the optional build secret `ca_bundle` as the CA bundle of pip, uv
# and Python (machines whose package-index traffic goes through a TLS-inspecting proxy). Without the
# secret (the usual case online) the command runs unchanged. Never part of a runtime image.
#   docker build --secret id=ca_bundle,src=/etc/ssl/certs/ca-certificates.crt ...
if [ -s /run/secrets/ca_bundle ]; then
  export SSL_CERT_FILE=/run/secrets/ca_bundle PIP_CERT=/run/secrets/ca_bundle \
    REQUESTS_CA_BUNDLE=/run/secrets/ca_bundle UV_NATIVE_TLS=1
fi
exec "$@"
