# Sourced by docker/Containerfile's cargo steps. A machine whose HTTPS goes
# through an inspecting proxy trusts that proxy's CA; build.sh hands its CA
# bundle to the build as the secret `build-ca`, which cargo's downloads use.
# It is mounted for the one step and never copied into an image.
if [ -s /run/secrets/build-ca ]; then
  export CARGO_HTTP_CAINFO=/run/secrets/build-ca
fi
