using System.Runtime.InteropServices;
using TcmuSharedVolume.Diagnostics;
using TcmuSharedVolume.Interop;
using TcmuSharedVolume.Scsi;

namespace TcmuSharedVolume.Backends;

/// <summary>
/// Reads and writes that finish on librbd's thread (<see cref="IAsyncBackingStore"/>): the
/// caller's thread starts the aio request and returns, and the completion callback tells the
/// caller's <see cref="IStoreCompletion"/>. A command holds no thread while it is in the
/// cluster, so the commands in flight are as many as the initiator queues, not as many as the
/// event loop has threads (docs/architecture.md §2).
/// </summary>
public sealed unsafe partial class RbdStore
{
    /// <summary>librbd checks a vectored request against IOV_MAX.</summary>
    private const int MaxAsyncSegments = 1024;

    /// <summary>
    /// The link from one aio completion back to the caller: made once, with the GCHandle that
    /// is the completion's argument, and reused (<see cref="_idle"/>), so a request allocates
    /// nothing managed. The handles are freed when the store is disposed.
    /// </summary>
    private sealed class AsyncRequest
    {
        public readonly RbdStore Store;
        public readonly nint Handle;
        public IStoreCompletion? Completion;
        public long Offset;
        public long Expected;   // bytes a read must return; -1 for a write (librbd answers 0)

        public AsyncRequest(RbdStore store)
        {
            Store = store;
            Handle = GCHandle.ToIntPtr(GCHandle.Alloc(this));
        }
    }

    private readonly Lock _requestsLock = new();
    private readonly List<AsyncRequest> _requests = [];
    private AsyncRequest[] _idle = new AsyncRequest[32];
    private int _idleCount;

    /// <summary>Reads of any shape; a FUA write only as one segment (rbd_aio_write2 carries the
    /// FUA flag, and librbd has no vectored write with op flags), which is every write of a
    /// ring whose data blocks are contiguous.</summary>
    public bool CanStart(bool write, int segments, bool forceUnitAccess) =>
        segments is > 0 and <= MaxAsyncSegments && (!write || !forceUnitAccess || segments == 1);

    public void StartRead(DataBuffer destination, long offset, IStoreCompletion completion)
    {
        CheckAsync(destination, offset, write: false, forceUnitAccess: false);
        var request = Begin(completion, offset, destination.Length);
        try
        {
            nint c = NewAsyncCompletion(request);
            int r;
            fixed (IoVec* iov = destination.Segments)
                r = LibRbd.rbd_aio_readv(_image, iov, destination.Segments.Length, (ulong)offset, c);
            NotQueued(c, r, "read");
        }
        catch
        {
            End(request);
            throw;
        }
    }

    public void StartWrite(DataBuffer source, long offset, bool forceUnitAccess, IStoreCompletion completion)
    {
        CheckAsync(source, offset, write: true, forceUnitAccess);
        var request = Begin(completion, offset, -1);
        try
        {
            nint c = NewAsyncCompletion(request);
            var segments = source.Segments;
            int r;
            if (segments.Length == 1)
            {
                r = LibRbd.rbd_aio_write2(_image, (ulong)offset, (nuint)segments[0].Length, (byte*)segments[0].Base, c,
                    forceUnitAccess ? LibRados.LIBRADOS_OP_FLAG_FADVISE_FUA : 0);
            }
            else
            {
                // librbd takes its references to the data at the call (rbd_aio_writev): the list
                // itself may go, the bytes stay until the completion.
                fixed (IoVec* iov = segments)
                    r = LibRbd.rbd_aio_writev(_image, iov, segments.Length, (ulong)offset, c);
            }
            NotQueued(c, r, "write");
        }
        catch
        {
            End(request);
            throw;
        }
    }

    private void CheckAsync(DataBuffer data, long offset, bool write, bool forceUnitAccess)
    {
        if (data.Length <= 0 || !CanStart(write, data.Segments.Length, forceUnitAccess))
            throw new ArgumentException($"rbd: an asynchronous {(write ? "write" : "read")} of {data.Length} bytes in {data.Segments.Length} segments{(forceUnitAccess ? " with FUA" : "")} cannot be started; use the synchronous call");
        CheckRange(offset, data.Length);
    }

    /// <summary>Holds the image open (<see cref="Enter"/>) until the completion has run, and
    /// takes a request link from the idle ones.</summary>
    private AsyncRequest Begin(IStoreCompletion completion, long offset, long expected)
    {
        Enter();
        AsyncRequest request;
        lock (_requestsLock)
        {
            if (_idleCount > 0)
            {
                request = _idle[--_idleCount];
            }
            else
            {
                // More in flight than ever before: one more link (allocates only up to the peak).
                request = new AsyncRequest(this);
                _requests.Add(request);
                if (_idle.Length < _requests.Count) Array.Resize(ref _idle, _requests.Count * 2);
            }
        }
        request.Completion = completion;
        request.Offset = offset;
        request.Expected = expected;
        return request;
    }

    /// <summary>The request is over (completed, or never queued): its link goes back, the image may close.</summary>
    private void End(AsyncRequest request)
    {
        Release(request);
        Exit();
    }

    private void Release(AsyncRequest request)
    {
        request.Completion = null;
        lock (_requestsLock) _idle[_idleCount++] = request;
    }

    private static nint NewAsyncCompletion(AsyncRequest request)
    {
        nint c;
        int r = LibRbd.rbd_aio_create_completion(request.Handle, &OnAsyncComplete, &c);
        if (r < 0) throw new BackingStoreException($"rbd_aio_create_completion: {Describe(-r)}", -r);
        return c;
    }

    /// <summary>What rbd_aio_* returned: a request that was never queued has no callback coming.</summary>
    private void NotQueued(nint completion, int issued, string what)
    {
        if (issued >= 0) return;
        LibRbd.rbd_aio_release(completion);
        throw Error(what, -issued);
    }

    /// <summary>
    /// Runs on a librbd thread. Takes the result and releases the completion first (librbd
    /// allows it in the callback), and the request's link before the caller hears of it: the
    /// caller may start its next command at once, which then finds the link idle instead of
    /// making another. The image may close only after the caller is told: the request was
    /// counted in <see cref="Enter"/> until then, so Reconnect and Dispose wait for it. Nothing
    /// may escape an unmanaged callback: a failure of the caller's completion is logged.
    /// </summary>
    [UnmanagedCallersOnly]
    private static void OnAsyncComplete(nint completion, nint arg)
    {
        long r = LibRbd.rbd_aio_get_return_value(completion);
        LibRbd.rbd_aio_release(completion);
        var request = (AsyncRequest)GCHandle.FromIntPtr(arg).Target!;
        var store = request.Store;
        var caller = request.Completion!;
        long offset = request.Offset, expected = request.Expected;
        bool write = expected < 0;
        store.Release(request);
        try
        {
            BackingStoreException? error = null;
            if (r < 0)
                error = store.Error(write ? "write" : "read", (int)-r);
            else if (!write && r != expected)
                error = new BackingStoreException($"rbd read on {store.Location}: {r} of {expected} bytes at {offset}", EIO);
            caller.StoreCompleted(error);
        }
        catch (Exception e)
        {
            Log.Error($"rbd on {store.Location}: finishing an asynchronous {(write ? "write" : "read")} failed: {e}");
        }
        finally
        {
            store.Exit();
        }
    }

    /// <summary>On dispose, with nothing in flight: the links' handles go.</summary>
    private void FreeAsyncRequests()
    {
        lock (_requestsLock)
        {
            foreach (var request in _requests) GCHandle.FromIntPtr(request.Handle).Free();
            _requests.Clear();
            _idleCount = 0;
        }
    }
}
