FROM scratch
COPY bin/web /web
ENTRYPOINT ["/web"]
EXPOSE 8080
