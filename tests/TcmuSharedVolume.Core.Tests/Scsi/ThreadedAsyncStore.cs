using System.Collections.Concurrent;
using TcmuSharedVolume.Backends;
using TcmuSharedVolume.Scsi;

namespace TcmuSharedVolume.Tests.Scsi;

/// <summary>
/// An <see cref="IAsyncBackingStore"/> over another store, for tests of the path where a store
/// finishes commands on its own thread: a request started here runs on this store's one
/// thread, after <see cref="Delay"/> and only while <see cref="Hold"/> is not in force. If the
/// inner store is asynchronous itself (RBD), the request is started there then, and finishes on
/// librbd's thread; otherwise it runs synchronously on this store's thread. Everything else
/// goes straight to the inner store. Linked into the Linux tests.
/// </summary>
public sealed class ThreadedAsyncStore : IAsyncBackingStore
{
    private readonly IBackingStore _inner;
    private readonly BlockingCollection<Action> _work = [];
    private readonly ManualResetEventSlim _open = new(true);
    private readonly Thread _thread;
    private int _pending;

    public ThreadedAsyncStore(IBackingStore inner)
    {
        _inner = inner;
        _thread = new Thread(() =>
        {
            foreach (var work in _work.GetConsumingEnumerable()) work();
        }) { IsBackground = true, Name = "test-async-store" };
        _thread.Start();
    }

    /// <summary>How long a started request waits before it runs.</summary>
    public TimeSpan Delay { get; set; }

    /// <summary>Requests started and not yet completed (or not yet handed to the inner store).</summary>
    public int Pending => Volatile.Read(ref _pending);

    /// <summary>Requests started from now on wait (in order) until <see cref="Release"/>.</summary>
    public void Hold() => _open.Reset();

    public void Release() => _open.Set();

    /// <summary>Fails the next requests with this errno instead of running them (0: run them).</summary>
    public int FailErrno { get; set; }

    /// <summary>The thread completions run on when the inner store is synchronous.</summary>
    public Thread CompletionThread => _thread;

    public bool CanStart(bool write, int segments, bool forceUnitAccess) =>
        _inner is IAsyncBackingStore a ? a.CanStart(write, segments, forceUnitAccess) : segments > 0;

    public void StartRead(DataBuffer destination, long offset, IStoreCompletion completion) =>
        Queue(completion, () =>
        {
            if (_inner is IAsyncBackingStore a) a.StartRead(destination, offset, completion);
            else
            {
                _inner.Read(destination.Segments, offset);
                return false;
            }
            return true;
        });

    public void StartWrite(DataBuffer source, long offset, bool forceUnitAccess, IStoreCompletion completion) =>
        Queue(completion, () =>
        {
            if (_inner is IAsyncBackingStore a) a.StartWrite(source, offset, forceUnitAccess, completion);
            else
            {
                _inner.Write(source.Segments, offset, forceUnitAccess);
                return false;
            }
            return true;
        });

    /// <summary><paramref name="run"/> returns true when it handed the request to the inner store's own completion.</summary>
    private void Queue(IStoreCompletion completion, Func<bool> run)
    {
        Interlocked.Increment(ref _pending);
        int errno = FailErrno;
        _work.Add(() =>
        {
            _open.Wait();
            if (Delay > TimeSpan.Zero) Thread.Sleep(Delay);
            BackingStoreException? error = errno != 0 ? new BackingStoreException($"test store: errno {errno}", errno) : null;
            if (error is null)
            {
                try
                {
                    if (run())
                    {
                        Interlocked.Decrement(ref _pending);
                        return;
                    }
                }
                catch (BackingStoreException e)
                {
                    error = e;
                }
            }
            Interlocked.Decrement(ref _pending);
            completion.StoreCompleted(error);
        });
    }

    public long SizeBytes => _inner.SizeBytes;
    public bool SupportsUnmap => _inner.SupportsUnmap;
    public bool UnmapReadsZeroes => _inner.UnmapReadsZeroes;
    public int UnmapGranularity => _inner.UnmapGranularity;
    public int AtomicCompareAndWriteBytes => _inner.AtomicCompareAndWriteBytes;

    public long CompareAndWrite(ReadOnlySpan<byte> compare, ReadOnlySpan<byte> write, long offset, bool forceUnitAccess) =>
        _inner.CompareAndWrite(compare, write, offset, forceUnitAccess);

    public void Read(ReadOnlySpan<IoVec> destination, long offset) => _inner.Read(destination, offset);
    public void Write(ReadOnlySpan<IoVec> source, long offset, bool forceUnitAccess) => _inner.Write(source, offset, forceUnitAccess);
    public void Read(Span<byte> destination, long offset) => _inner.Read(destination, offset);
    public void Write(ReadOnlySpan<byte> source, long offset, bool forceUnitAccess) => _inner.Write(source, offset, forceUnitAccess);
    public void Flush() => _inner.Flush();
    public void Unmap(long offset, long length) => _inner.Unmap(offset, length);
    public void WriteZeroes(long offset, long length) => _inner.WriteZeroes(offset, length);
    public AllocationState GetAllocation(long offset, out long runLength) => _inner.GetAllocation(offset, out runLength);
    public void Resize(long newSizeBytes) => _inner.Resize(newSizeBytes);

    public void Dispose()
    {
        _open.Set();
        _work.CompleteAdding();
        _thread.Join();
        _inner.Dispose();
    }
}
