#!/bin/bash
# Map the v1 database/retention policy the service uses to the initial 2.x bucket (DBRP), so
# the v1-compatible /write?db=…&rp=… and InfluxQL /query?db=… reach the bucket.
#
# Run by the influxdb:2.x image once, after `influx setup`, from /docker-entrypoint-initdb.d
# (must stay executable). The influx CLI is already configured with the admin token; the image
# exports DOCKER_INFLUXDB_INIT_BUCKET_ID. By hand on an existing server:
#   influx v1 dbrp create --org vpp --bucket-id <id> --db vpp --rp autogen --default
set -euo pipefail

db="${V1_DB_NAME:-vpp}"
rp="${V1_RP_NAME:-autogen}"
org="${DOCKER_INFLUXDB_INIT_ORG:?}"
bucket_id="${DOCKER_INFLUXDB_INIT_BUCKET_ID:?}"

if influx v1 dbrp list --org "$org" --db "$db" --hide-headers | grep -q .; then
    echo "vpp: DBRP mapping for database '$db' exists, leaving it"
else
    influx v1 dbrp create --org "$org" --bucket-id "$bucket_id" --db "$db" --rp "$rp" --default
    echo "vpp: mapped database '$db' retention policy '$rp' to bucket $DOCKER_INFLUXDB_INIT_BUCKET"
fi
