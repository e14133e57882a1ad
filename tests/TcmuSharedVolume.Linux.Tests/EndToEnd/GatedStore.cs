using System.Collections.Concurrent;
using TcmuSharedVolume.Backends;
using TcmuSharedVolume.Scsi;

namespace TcmuSharedVolume.Tests.EndToEnd;

/// <summary>
/// A backing store whose writes into one byte range wait at a gate until the test opens it:
/// writes that are "in flight" in the daemon, past the reservation gate and inside the backend.
/// Every write that reaches the inner store in that range is logged with what
/// <see cref="AtLanding"/> said at that moment.
/// </summary>
internal sealed class GatedStore(IBackingStore inner, long gatedFrom, long gatedTo) : IBackingStore
{
    private readonly ManualResetEventSlim _open = new(true);
    private int _waiting;

    public ConcurrentQueue<(long Offset, bool Observed)> Landed { get; } = new();

    /// <summary>Evaluated just after a gated write reached the inner store.</summary>
    public Func<bool> AtLanding { get; set; } = () => false;

    /// <summary>Gated writes currently held at the closed gate.</summary>
    public int Waiting => Volatile.Read(ref _waiting);

    public void Close() => _open.Reset();
    public void Open() => _open.Set();

    private bool Gated(long offset) => offset >= gatedFrom && offset < gatedTo;

    private void Enter(long offset)
    {
        if (!Gated(offset)) return;
        Interlocked.Increment(ref _waiting);
        try
        {
            if (!_open.Wait(TimeSpan.FromSeconds(60))) throw new BackingStoreException("gate never opened", 110);
        }
        finally
        {
            Interlocked.Decrement(ref _waiting);
        }
    }

    private void Land(long offset)
    {
        if (Gated(offset)) Landed.Enqueue((offset, AtLanding()));
    }

    public long SizeBytes => inner.SizeBytes;
    public bool SupportsUnmap => inner.SupportsUnmap;
    public bool UnmapReadsZeroes => inner.UnmapReadsZeroes;
    public int UnmapGranularity => inner.UnmapGranularity;
    public void Read(ReadOnlySpan<IoVec> destination, long offset) => inner.Read(destination, offset);
    public void Read(Span<byte> destination, long offset) => inner.Read(destination, offset);

    public void Write(ReadOnlySpan<IoVec> source, long offset, bool forceUnitAccess)
    {
        Enter(offset);
        inner.Write(source, offset, forceUnitAccess);
        Land(offset);
    }

    public void Write(ReadOnlySpan<byte> source, long offset, bool forceUnitAccess)
    {
        Enter(offset);
        inner.Write(source, offset, forceUnitAccess);
        Land(offset);
    }

    public void Flush() => inner.Flush();
    public void Unmap(long offset, long length) => inner.Unmap(offset, length);
    public void WriteZeroes(long offset, long length) => inner.WriteZeroes(offset, length);
    public AllocationState GetAllocation(long offset, out long runLength) => inner.GetAllocation(offset, out runLength);

    public void Dispose()
    {
        _open.Set();
        inner.Dispose();
        _open.Dispose();
    }
}
