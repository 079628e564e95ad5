# gatehouse: build the native modules (better-sqlite3, ssh2's crypto binding) and the TypeScript,
# then run as a non-root user with the data directory as a volume. Node 22 is a maintained LTS line
# (package.json engines: >=22.12; Node 20 reached its end of life in April 2026); node:24-bookworm-slim works too.
FROM node:22-bookworm-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
# ssh2 is patched at install (postinstall: patch-package), so the patches come before npm ci.
COPY patches ./patches
COPY src ./src
COPY bin ./bin
RUN npm ci && npm prune --omit=dev

FROM node:22-bookworm-slim
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
COPY config ./config
COPY web ./web
RUN mkdir -m 0700 /data && chown node:node /data
USER node
ENV GATEHOUSE_DATA=/data GATEHOUSE_WEB_LISTEN=0.0.0.0:8080
VOLUME ["/data"]
EXPOSE 2222 8080
# SIGTERM is the graceful stop: live operators are told, shutdownGrace (30s) lets them finish.
# Give the container longer than that to stop: docker stop -t 45, compose stop_grace_period: 45s.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s CMD ["node", "-e", "fetch('http://127.0.0.1:8080/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "/app/bin/gatehouse.js"]
CMD ["serve"]
