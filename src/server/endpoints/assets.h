/*
 * assets.h - the files embedded in the daemon (internal): the dashboard
 * (assets.c, generated at build time by embed.c from clients/dashboard/)
 * and the API reference (api_assets.c: docs/openapi.json and the /docs page
 * of clients/apidocs/).
 */
#ifndef EASYTORCHD_ASSETS_H
#define EASYTORCHD_ASSETS_H

#include <stddef.h>

typedef struct etd_asset {
    const char *name;           /* file name, no leading '/' */
    const unsigned char *data;
    size_t len;
} etd_asset;

extern const etd_asset etd_assets[];       /* terminated by {NULL} */
extern const etd_asset etd_api_assets[];   /* terminated by {NULL} */

/* The entry of table called name, or NULL. */
const etd_asset *etd_asset_find(const etd_asset *table, const char *name);
/* Content-Type of a file name by its extension (static string). */
const char *etd_mime_type(const char *name);

#endif
