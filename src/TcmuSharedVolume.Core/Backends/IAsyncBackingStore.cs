using TcmuSharedVolume.Scsi;

namespace TcmuSharedVolume.Backends;

/// <summary>Told when a request started on an <see cref="IAsyncBackingStore"/> has finished.</summary>
public interface IStoreCompletion
{
    /// <summary>
    /// Once per started request, on the store's own thread (librbd's): <paramref name="error"/>
    /// is null when every byte was moved. Keep it short, never block, never throw: the store's
    /// other requests complete on the same thread.
    /// </summary>
    void StoreCompleted(BackingStoreException? error);
}

/// <summary>
/// A store whose reads and writes can finish on a thread of its own instead of holding the
/// caller's: a network store (Ceph RBD), where a request is a round trip to another process
/// and a thread waiting for each would cap the commands in flight at the number of threads
/// (docs/architecture.md §2). The synchronous methods of <see cref="IBackingStore"/> still work.
/// </summary>
public interface IAsyncBackingStore : IBackingStore
{
    /// <summary>Whether a request of <paramref name="segments"/> segments can be started; when
    /// not, the caller uses the synchronous methods.</summary>
    bool CanStart(bool write, int segments, bool forceUnitAccess);

    /// <summary>
    /// Starts reading <paramref name="destination"/>'s length in bytes at <paramref name="offset"/>
    /// into it. The buffer, and its list of segments, must stay valid until
    /// <paramref name="completion"/> has run (the transport's data area and iovec list of a
    /// command in flight do). Throws (<see cref="BackingStoreException"/>,
    /// <see cref="ArgumentOutOfRangeException"/>, <see cref="ObjectDisposedException"/>) when it
    /// cannot start; <paramref name="completion"/> then never runs.
    /// </summary>
    void StartRead(DataBuffer destination, long offset, IStoreCompletion completion);

    /// <summary>Starts writing <paramref name="source"/> at <paramref name="offset"/>; as
    /// <see cref="StartRead"/>. FUA: complete only once the data is durable.</summary>
    void StartWrite(DataBuffer source, long offset, bool forceUnitAccess, IStoreCompletion completion);
}
