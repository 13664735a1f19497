/*
 * config.h - easytorchd's configuration, as main.c reads it from flags and
 * the environment (internal).  One struct per layer, each handed to its
 * layer as it is: nothing is copied field by field.
 */
#ifndef EASYTORCHD_CONFIG_H
#define EASYTORCHD_CONFIG_H

#include "server/endpoints/endpoint.h"
#include "server/formats/json_in.h"
#include "server/models/models.h"
#include "server/transport/transport.h"

typedef struct etd_config {
    etd_transport_opts http;   /* listen, token, connections, timeouts, body size, log */
    etd_json_limits json;      /* request bodies: depth, values, tensor elements */
    etd_registry_opts models;  /* data dir, sync, limits on models, steps, history */
} etd_config;

#endif
