FROM scratch
COPY bin/worker /worker
ENTRYPOINT ["/worker"]
