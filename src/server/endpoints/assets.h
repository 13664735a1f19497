/*
 * assets.h - the dashboard files embedded in the daemon (internal).
 * assets.c is generated at build time by embed.c from clients/dashboard/.
 */
#ifndef EASYTORCHD_ASSETS_H
#define EASYTORCHD_ASSETS_H

#include <stddef.h>

typedef struct etd_asset {
    const char *name;           /* file name, no leading '/' */
    const unsigned char *data;
    size_t len;
} etd_asset;

extern const etd_asset etd_assets[];   /* terminated by {NULL} */

#endif
