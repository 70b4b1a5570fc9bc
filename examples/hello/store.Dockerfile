FROM scratch
COPY bin/store /store
ENTRYPOINT ["/store"]
EXPOSE 7000
VOLUME /data
