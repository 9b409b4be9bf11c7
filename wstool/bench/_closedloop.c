/* wstool bench's echo-mode receive path in C: ReceiverCore.data_received.
 *
 * The same steps, in the same order, as _FastReceiver._data_received_py in
 * generator.py (the pure-Python path, used when this extension is not built or
 * WSTOOL_PURE_PYTHON is set): a chunk of whole echoes of the one payload is checked
 * with one memcmp against the run of expected echoes, their latency is counted from
 * their batch's send time, and as many pre-built frames are written back in one
 * transport.write. Every other case calls the same Python method the Python path
 * calls at that point (_parse, load.received, _received_only,
 * load.replace, load.send, _write_failed), so both paths leave the same state.
 *
 * Why C (bench/README.md, "Issue 15, session 6"): request/response costs the
 * generator one read and one write per round trip; the Python path added ~2 us of
 * interpreter work to the ~7 us of the kernel's loopback path, this one ~0.3 us.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <string.h>

static PyObject *open_state;  /* websockets.protocol.State.OPEN */
static PyObject *clock_fn;    /* time.perf_counter */

static PyObject *s_writes, *s_state,
    *s_owed, *s_sent, *s_bytes_sent, *s_in_flight_echoes, *s_received,
    *s_replace, *s_send, *s_parse, *s_received_only, *s_write_failed, *s_append, *s_popleft,
    *s_bytes_received, *s_unmatched;

/* What every connection's receiver of one run reads and counts on each round trip:
 * BenchRun.shared (its sending, round_trips and latency.pending are these). */
typedef struct {
    PyObject_HEAD
    PyObject *pending;  /* the latency histogram's pending dict: us -> count */
    Py_ssize_t round_trips;
    char sending;
} Shared;

static int
shared_traverse(Shared *self, visitproc visit, void *arg)
{
    Py_VISIT(self->pending);
    return 0;
}

static int
shared_clear(Shared *self)
{
    Py_CLEAR(self->pending);
    return 0;
}

static void
shared_dealloc(Shared *self)
{
    PyObject_GC_UnTrack(self);
    shared_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef shared_members[] = {
    {"pending", T_OBJECT_EX, offsetof(Shared, pending), 0, NULL},
    {"round_trips", T_PYSSIZET, offsetof(Shared, round_trips), 0, NULL},
    {"sending", T_BOOL, offsetof(Shared, sending), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject SharedType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "wstool.bench._closedloop.RunShared",
    .tp_doc = "A bench run's counters that every receiver of the run updates.",
    .tp_basicsize = sizeof(Shared),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)shared_dealloc,
    .tp_traverse = (traverseproc)shared_traverse,
    .tp_clear = (inquiry)shared_clear,
    .tp_members = shared_members,
};

typedef struct {
    PyObject_HEAD
    PyObject *buf;
    PyObject *echo_run;
    PyObject *load;
    PyObject *run;
    PyObject *protocol;
    PyObject *transport;
    PyObject *sent_ts;
    PyObject *frames;
    PyObject *frames_run;
    PyObject *conn;
    PyObject *write;  /* transport.write, bound once (set_transport) */
    PyObject *shared; /* the run's Shared */
    Py_ssize_t frame_index;
    Py_ssize_t echo_len;
    Py_ssize_t echo_payload;
    Py_ssize_t refill;
    Py_ssize_t max_send;
    Py_ssize_t pool;
    Py_ssize_t frame_len;
    char closed_loop;
} Core;

/* The exception being raised, taken (a new reference; the error indicator cleared). */
static PyObject *
raised_exception(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL && value != NULL)
        PyException_SetTraceback(value, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value;
#endif
}

/* Helpers: each returns -1 with an exception set on failure. */

static int
call_void(PyObject *obj, PyObject *name, PyObject *const *args, size_t nargs)
{
    PyObject *stack[4];
    stack[0] = obj;
    for (size_t i = 0; i < nargs; i++)
        stack[i + 1] = args[i];
    PyObject *r = PyObject_VectorcallMethod(name, stack, (nargs + 1) | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

static int
call_ss(PyObject *obj, PyObject *name, Py_ssize_t a, Py_ssize_t b)
{
    PyObject *x = PyLong_FromSsize_t(a), *y = PyLong_FromSsize_t(b);
    int rc = -1;
    if (x && y) {
        PyObject *args[2] = {x, y};
        rc = call_void(obj, name, args, 2);
    }
    Py_XDECREF(x);
    Py_XDECREF(y);
    return rc;
}

static int
call_sf(PyObject *obj, PyObject *name, Py_ssize_t a, PyObject *now)
{
    PyObject *x = PyLong_FromSsize_t(a);
    if (x == NULL)
        return -1;
    PyObject *args[2] = {x, now};
    int rc = call_void(obj, name, args, 2);
    Py_DECREF(x);
    return rc;
}

static int
call_s(PyObject *obj, PyObject *name, Py_ssize_t a)
{
    PyObject *x = PyLong_FromSsize_t(a);
    if (x == NULL)
        return -1;
    int rc = call_void(obj, name, &x, 1);
    Py_DECREF(x);
    return rc;
}

/* obj.name as a Py_ssize_t (-1 and an exception on failure: check PyErr_Occurred) */
static Py_ssize_t
get_ssize(PyObject *obj, PyObject *name)
{
    PyObject *v = PyObject_GetAttr(obj, name);
    if (v == NULL)
        return -1;
    Py_ssize_t r = PyLong_AsSsize_t(v);
    Py_DECREF(v);
    return r;
}

static int
set_ssize(PyObject *obj, PyObject *name, Py_ssize_t value)
{
    PyObject *v = PyLong_FromSsize_t(value);
    if (v == NULL)
        return -1;
    int rc = PyObject_SetAttr(obj, name, v);
    Py_DECREF(v);
    return rc;
}

static int
add_ssize(PyObject *obj, PyObject *name, Py_ssize_t delta)
{
    Py_ssize_t v = get_ssize(obj, name);
    if (v == -1 && PyErr_Occurred())
        return -1;
    return set_ssize(obj, name, v + delta);
}

/* The batch matched in place (the only one in flight) leaves sent_ts after all, as
 * the Python path's popleft() took it: before any path that does not write. */
static int
drop_batch(Core *self, PyObject **batch)
{
    if (*batch == NULL)
        return 0;
    Py_CLEAR(*batch);
    PyObject *r = PyObject_VectorcallMethod(s_popleft, &self->sent_ts,
                                            1 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* A batch [sent time, count]: its count (-1 and an exception if it is not one). */
static Py_ssize_t
batch_count(PyObject *batch)
{
    if (!PyList_CheckExact(batch) || PyList_GET_SIZE(batch) != 2) {
        PyErr_SetString(PyExc_TypeError, "a batch in flight is [sent time, count]");
        return -1;
    }
    return PyLong_AsSsize_t(PyList_GET_ITEM(batch, 1));
}

/* counts[int((now - sent) * 1e6)] += take (int(): truncation toward zero, as C's). */
static int
count_latency(PyObject *counts, PyObject *batch, double now_s, Py_ssize_t take)
{
    double sent_s = PyFloat_AsDouble(PyList_GET_ITEM(batch, 0));
    if (sent_s == -1.0 && PyErr_Occurred())
        return -1;
    PyObject *key = PyLong_FromLongLong((long long)((now_s - sent_s) * 1e6));
    if (key == NULL)
        return -1;
    int rc = -1;
    PyObject *old = PyDict_GetItemWithError(counts, key);  /* borrowed */
    Py_ssize_t have = old != NULL ? PyLong_AsSsize_t(old) : 0;
    if (!PyErr_Occurred()) {
        PyObject *value = PyLong_FromSsize_t(have + take);
        if (value != NULL) {
            rc = PyDict_SetItem(counts, key, value);
            Py_DECREF(value);
        }
    }
    Py_DECREF(key);
    return rc;
}

/* generator.py's _record_batches: N echoes, in order, against the batches in
 * flight, oldest first; returns how many matched nothing (-1 on error). */
static Py_ssize_t
record_batches(Core *self, PyObject *counts, Py_ssize_t n, double now_s)
{
    Py_ssize_t left = n;
    while (left) {
        Py_ssize_t len = PyObject_Length(self->sent_ts);
        if (len < 0)
            return -1;
        if (!len)
            break;
        PyObject *batch = PySequence_GetItem(self->sent_ts, 0);
        if (batch == NULL)
            return -1;
        Py_ssize_t count = batch_count(batch);
        Py_ssize_t take = count <= left ? count : left;
        if ((count == -1 && PyErr_Occurred()) || count_latency(counts, batch, now_s, take) < 0) {
            Py_DECREF(batch);
            return -1;
        }
        left -= take;
        int rc;
        if (take == count) {
            PyObject *r = PyObject_VectorcallMethod(s_popleft, &self->sent_ts,
                                                    1 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
            Py_XDECREF(r);
            rc = r == NULL ? -1 : 0;
        } else {
            PyObject *rest = PyLong_FromSsize_t(count - take);
            rc = rest == NULL ? -1 : PyList_SetItem(batch, 1, rest);
        }
        Py_DECREF(batch);
        if (rc < 0)
            return -1;
    }
    return left;
}

/* self.load.received(n, n * echo_payload) */
static PyObject *
load_received(Core *self, Py_ssize_t n)
{
    if (call_ss(self->load, s_received, n, n * self->echo_payload) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
finish(int rc)
{
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
core_data_received(Core *self, PyObject *data)
{
    PyObject *run_bytes = self->echo_run;
    if (run_bytes == NULL || run_bytes == Py_None || !PyBytes_CheckExact(run_bytes))
        return finish(call_void((PyObject *)self, s_parse, &data, 1));
    if (!PyBytes_Check(data)) {
        PyErr_SetString(PyExc_TypeError, "data_received() takes bytes");
        return NULL;
    }
    PyObject *joined = NULL;  /* buf + data, owned */
    if (self->buf != NULL && PyBytes_Check(self->buf) && PyBytes_GET_SIZE(self->buf)) {
        joined = PyBytes_FromStringAndSize(NULL, PyBytes_GET_SIZE(self->buf) + PyBytes_GET_SIZE(data));
        if (joined == NULL)
            return NULL;
        memcpy(PyBytes_AS_STRING(joined), PyBytes_AS_STRING(self->buf), PyBytes_GET_SIZE(self->buf));
        memcpy(PyBytes_AS_STRING(joined) + PyBytes_GET_SIZE(self->buf), PyBytes_AS_STRING(data),
               PyBytes_GET_SIZE(data));
        data = joined;
        PyObject *empty = PyBytes_FromStringAndSize(NULL, 0);
        if (empty == NULL) {
            Py_DECREF(joined);
            return NULL;
        }
        Py_SETREF(self->buf, empty);
    }
    PyObject *result = NULL;
    Py_ssize_t size = PyBytes_GET_SIZE(data);
    if (size > PyBytes_GET_SIZE(run_bytes)
        || memcmp(PyBytes_AS_STRING(run_bytes), PyBytes_AS_STRING(data), (size_t)size) != 0) {
        result = finish(call_void((PyObject *)self, s_parse, &data, 1));
        goto done;
    }
    Py_ssize_t echo_len = self->echo_len, n;
    if (echo_len <= 0) {
        PyErr_SetString(PyExc_ValueError, "echo_len must be positive");
        goto done;
    }
    if (size == echo_len) {
        n = 1;
    } else {
        n = size / echo_len;
        Py_ssize_t tail = size - n * echo_len;
        if (tail) {
            PyObject *rest = PyBytes_FromStringAndSize(PyBytes_AS_STRING(data) + size - tail, tail);
            if (rest == NULL)
                goto done;
            Py_XSETREF(self->buf, rest);
        }
        if (!n) {
            result = Py_NewRef(Py_None);
            goto done;
        }
    }
    if (!self->closed_loop) {
        result = load_received(self, n);
        goto done;
    }
    PyObject *run = self->run, *load = self->load;
    if (self->shared == NULL || !Py_IS_TYPE(self->shared, &SharedType)) {
        PyErr_SetString(PyExc_TypeError, "the receiver's shared is not a RunShared");
        goto done;
    }
    Shared *shared = (Shared *)self->shared;
    if (!shared->sending) {
        result = load_received(self, n);
        goto done;
    }
    PyObject *now = PyObject_CallNoArgs(clock_fn);
    if (now == NULL)
        goto done;
    double now_s = PyFloat_AsDouble(now);
    if (now_s == -1.0 && PyErr_Occurred())
        goto done_now;
    PyObject *sent_ts = self->sent_ts;
    Py_ssize_t in_flight = PyObject_Length(sent_ts);
    if (in_flight < 0)
        goto done_now;
    /* batch: borrowed from sent_ts when it is its only item (updated in place
     * below: the same as popleft() then append() of the same list) */
    PyObject *counts = shared->pending;
    if (counts == NULL || !PyDict_CheckExact(counts)) {
        PyErr_SetString(PyExc_TypeError, "RunShared.pending is not a dict");
        goto done_now;
    }
    Py_INCREF(counts);
    /* batch: the only one in flight, its count N, kept in sent_ts and updated in
     * place below (as the Python path's popleft() then append() of the same list) */
    PyObject *batch = NULL;
    if (in_flight == 1) {
        batch = PySequence_GetItem(sent_ts, 0);  /* new reference */
        if (batch == NULL) {
            Py_DECREF(counts);
            goto done_now;
        }
        Py_ssize_t count = batch_count(batch);
        if (count == -1 && PyErr_Occurred()) {
            Py_DECREF(counts);
            goto done_batch;
        }
        if (count == n) {
            if (count_latency(counts, batch, now_s, n) < 0) {
                Py_DECREF(counts);
                goto done_batch;
            }
        } else {
            Py_CLEAR(batch);
        }
    }
    if (batch == NULL) {  /* _match_batches: oldest batch first */
        Py_ssize_t left = record_batches(self, counts, n, now_s);
        if (left < 0) {
            Py_DECREF(counts);
            goto done_now;
        }
        if (left) {  /* echoes of nothing in flight: counted, not replaced */
            if (add_ssize(run, s_received, left) < 0
                || add_ssize(run, s_bytes_received, left * self->echo_payload) < 0
                || add_ssize(run, s_unmatched, left) < 0) {
                Py_DECREF(counts);
                goto done_now;
            }
            n -= left;
        }
    }
    Py_DECREF(counts);
    if (!n) {
        result = Py_NewRef(Py_None);
        goto done_batch;
    }
    Py_ssize_t send = n, refill = self->refill;
    if (refill != 1) {
        if (!refill) {  /* --messages: replace() counts them down */
            if (drop_batch(self, &batch) == 0 && call_s((PyObject *)self, s_received_only, n) == 0)
                result = finish(call_sf(load, s_replace, n, now));
            goto done_batch;
        }
        Py_ssize_t owed = get_ssize(load, s_owed);
        if (owed == -1 && PyErr_Occurred())
            goto done_batch;
        send += owed;
        if (send < refill) {
            if (drop_batch(self, &batch) == 0 && set_ssize(load, s_owed, send) == 0)
                result = finish(call_s((PyObject *)self, s_received_only, n));
            goto done_batch;
        }
        if (set_ssize(load, s_owed, 0) < 0)
            goto done_batch;
    }
    {
        PyObject *protocol = self->protocol;
        int slow = send > self->max_send;
        if (!slow) {
            PyObject *writes = PyObject_GetAttr(protocol, s_writes);
            if (writes == NULL)
                goto done_batch;
            slow = PyObject_IsTrue(writes);
            Py_DECREF(writes);
            if (slow < 0)
                goto done_batch;
        }
        if (!slow) {
            PyObject *state = PyObject_GetAttr(protocol, s_state);
            if (state == NULL)
                goto done_batch;
            slow = state != open_state;
            Py_DECREF(state);
        }
        if (slow) {  /* the library's queue first, or SessionClosed */
            if (drop_batch(self, &batch) == 0 && call_s((PyObject *)self, s_received_only, n) == 0)
                result = finish(call_sf(load, s_send, send, now));
            goto done_batch;
        }
    }
    Py_ssize_t i = self->frame_index;
    PyObject *frame;
    if (send == 1) {
        if (!PyList_CheckExact(self->frames) || i < 0 || i >= PyList_GET_SIZE(self->frames)) {
            PyErr_SetString(PyExc_IndexError, "frame index out of the pool");
            goto done_batch;
        }
        frame = Py_NewRef(PyList_GET_ITEM(self->frames, i));
    } else {
        Py_ssize_t fl = self->frame_len, start = i * fl, len = send * fl;
        if (!PyBytes_CheckExact(self->frames_run) || start < 0
            || start + len > PyBytes_GET_SIZE(self->frames_run)) {
            PyErr_SetString(PyExc_IndexError, "frames beyond the pre-joined run");
            goto done_batch;
        }
        frame = PyBytes_FromStringAndSize(PyBytes_AS_STRING(self->frames_run) + start, len);
        if (frame == NULL)
            goto done_batch;
    }
    PyObject *w = PyObject_CallOneArg(self->write, frame);
    Py_DECREF(frame);
    if (w == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_Exception))
            goto done_batch;
        /* the transport is gone; connection_lost follows */
        PyObject *exc = raised_exception();
        PyObject *nn = drop_batch(self, &batch) == 0 ? PyLong_FromSsize_t(n) : NULL;
        if (nn != NULL) {
            PyObject *stack[3] = {(PyObject *)self, nn, exc};
            PyObject *r = PyObject_VectorcallMethod(s_write_failed, stack,
                                                    3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
            Py_DECREF(nn);
            if (r != NULL) {
                Py_DECREF(r);
                result = Py_NewRef(Py_None);
            }
        }
        Py_XDECREF(exc);
        goto done_batch;
    }
    Py_DECREF(w);
    i += send;
    self->frame_index = i < self->pool ? i : i % self->pool;
    if (batch != NULL) {  /* the only batch, in place: no allocation per round trip */
        PyObject *count = PyLong_FromSsize_t(send);
        if (count == NULL)
            goto done_batch;
        PyList_SetItem(batch, 0, Py_NewRef(now));
        PyList_SetItem(batch, 1, count);
    } else {
        PyObject *count = PyLong_FromSsize_t(send);
        PyObject *fresh = count ? PyList_New(2) : NULL;
        if (fresh == NULL) {
            Py_XDECREF(count);
            goto done_batch;
        }
        PyList_SET_ITEM(fresh, 0, Py_NewRef(now));
        PyList_SET_ITEM(fresh, 1, count);
        PyObject *stack[2] = {sent_ts, fresh};
        PyObject *r = PyObject_VectorcallMethod(s_append, stack, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        Py_DECREF(fresh);
        if (r == NULL)
            goto done_batch;
        Py_DECREF(r);
    }
    shared->round_trips += n;
    if (send > n) {  /* the owed ones: sent, in flight again */
        Py_ssize_t more = send - n;
        if (add_ssize(run, s_sent, more) < 0
            || add_ssize(run, s_bytes_sent, more * self->echo_payload) < 0
            || add_ssize(load, s_in_flight_echoes, more) < 0)
            goto done_batch;
    }
    result = Py_NewRef(Py_None);
done_batch:
    Py_XDECREF(batch);
done_now:
    Py_DECREF(now);
done:
    Py_XDECREF(joined);
    return result;
}

static PyObject *
core_set_transport(Core *self, PyObject *transport)
{
    PyObject *write = PyObject_GetAttrString(transport, "write");
    if (write == NULL)
        return NULL;
    Py_XSETREF(self->transport, Py_NewRef(transport));
    Py_XSETREF(self->write, write);
    Py_RETURN_NONE;
}

static int
core_traverse(Core *self, visitproc visit, void *arg)
{
    Py_VISIT(self->buf);
    Py_VISIT(self->echo_run);
    Py_VISIT(self->load);
    Py_VISIT(self->run);
    Py_VISIT(self->protocol);
    Py_VISIT(self->transport);
    Py_VISIT(self->sent_ts);
    Py_VISIT(self->frames);
    Py_VISIT(self->frames_run);
    Py_VISIT(self->conn);
    Py_VISIT(self->write);
    Py_VISIT(self->shared);
    return 0;
}

static int
core_clear(Core *self)
{
    Py_CLEAR(self->buf);
    Py_CLEAR(self->echo_run);
    Py_CLEAR(self->load);
    Py_CLEAR(self->run);
    Py_CLEAR(self->protocol);
    Py_CLEAR(self->transport);
    Py_CLEAR(self->sent_ts);
    Py_CLEAR(self->frames);
    Py_CLEAR(self->frames_run);
    Py_CLEAR(self->conn);
    Py_CLEAR(self->write);
    Py_CLEAR(self->shared);
    return 0;
}

static void
core_dealloc(Core *self)
{
    PyObject_GC_UnTrack(self);
    core_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef core_members[] = {
    {"buf", T_OBJECT_EX, offsetof(Core, buf), 0, NULL},
    {"echo_run", T_OBJECT_EX, offsetof(Core, echo_run), 0, NULL},
    {"load", T_OBJECT_EX, offsetof(Core, load), 0, NULL},
    {"run", T_OBJECT_EX, offsetof(Core, run), 0, NULL},
    {"protocol", T_OBJECT_EX, offsetof(Core, protocol), 0, NULL},
    {"transport", T_OBJECT_EX, offsetof(Core, transport), READONLY, NULL},
    {"sent_ts", T_OBJECT_EX, offsetof(Core, sent_ts), 0, NULL},
    {"frames", T_OBJECT_EX, offsetof(Core, frames), 0, NULL},
    {"frames_run", T_OBJECT_EX, offsetof(Core, frames_run), 0, NULL},
    {"conn", T_OBJECT_EX, offsetof(Core, conn), 0, NULL},
    {"shared", T_OBJECT_EX, offsetof(Core, shared), 0, NULL},
    {"frame_index", T_PYSSIZET, offsetof(Core, frame_index), 0, NULL},
    {"echo_len", T_PYSSIZET, offsetof(Core, echo_len), 0, NULL},
    {"echo_payload", T_PYSSIZET, offsetof(Core, echo_payload), 0, NULL},
    {"refill", T_PYSSIZET, offsetof(Core, refill), 0, NULL},
    {"max_send", T_PYSSIZET, offsetof(Core, max_send), 0, NULL},
    {"pool", T_PYSSIZET, offsetof(Core, pool), 0, NULL},
    {"frame_len", T_PYSSIZET, offsetof(Core, frame_len), 0, NULL},
    {"closed_loop", T_BOOL, offsetof(Core, closed_loop), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyMethodDef core_methods[] = {
    {"data_received", (PyCFunction)core_data_received, METH_O, NULL},
    {"set_transport", (PyCFunction)core_set_transport, METH_O, NULL},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject CoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "wstool.bench._closedloop.ReceiverCore",
    .tp_doc = "The hot fields and data_received of bench's echo-mode receiver.",
    .tp_basicsize = sizeof(Core),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)core_dealloc,
    .tp_traverse = (traverseproc)core_traverse,
    .tp_clear = (inquiry)core_clear,
    .tp_members = core_members,
    .tp_methods = core_methods,
};

static PyObject *
configure(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *state, *clock;
    if (!PyArg_ParseTuple(args, "OO:configure", &state, &clock))
        return NULL;
    Py_XSETREF(open_state, Py_NewRef(state));
    Py_XSETREF(clock_fn, Py_NewRef(clock));
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"configure", configure, METH_VARARGS,
     "configure(open_state, clock): websockets' State.OPEN and time.perf_counter."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_closedloop", NULL, -1, module_methods,
    NULL, NULL, NULL, NULL,
};

#define INTERN(var, text) \
    if ((var = PyUnicode_InternFromString(text)) == NULL) return NULL

PyMODINIT_FUNC
PyInit__closedloop(void)
{
    INTERN(s_writes, "writes");
    INTERN(s_state, "_state");
    INTERN(s_owed, "owed");
    INTERN(s_sent, "sent");
    INTERN(s_bytes_sent, "bytes_sent");
    INTERN(s_in_flight_echoes, "in_flight_echoes");
    INTERN(s_received, "received");
    INTERN(s_replace, "replace");
    INTERN(s_send, "send");
    INTERN(s_parse, "_parse");
    INTERN(s_received_only, "_received_only");
    INTERN(s_write_failed, "_write_failed");
    INTERN(s_append, "append");
    INTERN(s_popleft, "popleft");
    INTERN(s_bytes_received, "bytes_received");
    INTERN(s_unmatched, "unmatched");
    if (PyType_Ready(&CoreType) < 0 || PyType_Ready(&SharedType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "ReceiverCore", (PyObject *)&CoreType) < 0
        || PyModule_AddObjectRef(m, "RunShared", (PyObject *)&SharedType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
