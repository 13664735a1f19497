/*
 * connection.h - the libmicrohttpd callbacks of connection.c, for daemon.c
 * (internal to src/server/transport; includes microhttpd.h, as only the
 * transport may).
 */
#ifndef EASYTORCHD_CONNECTION_H
#define EASYTORCHD_CONNECTION_H

#include <microhttpd.h>

#include "server/transport/transport_internal.h"

enum MHD_Result etd_on_access(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls);
void etd_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe);
void etd_on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                       enum MHD_ConnectionNotificationCode code);
void *etd_on_uri(void *cls, const char *uri, struct MHD_Connection *conn);
/* The deadlines' and streams' thread. */
bool etd_watchdog_start(etd_server *s);
void etd_watchdog_stop(etd_server *s);
/* Wake every parked stream (draining: each pulls once more and ends). */
void etd_streams_wake_all(etd_server *s);

#endif
