# gatehouse: build the native modules (better-sqlite3, ssh2's crypto binding) and the TypeScript,
# then run as a non-root user with the data directory as a volume.
FROM node:20-bookworm-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
# ssh2 is patched at install (postinstall: patch-package), so the patches come before npm ci.
COPY patches ./patches
COPY src ./src
COPY bin ./bin
RUN npm ci && npm prune --omit=dev

FROM node:20-bookworm-slim
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
ENTRYPOINT ["node", "/app/bin/gatehouse.js"]
CMD ["serve"]
