using TcmuSharedVolume.Backends;
using TcmuSharedVolume.Linux.Tcmu;
using TcmuSharedVolume.Reservations;
using TcmuSharedVolume.Scsi;
using TcmuSharedVolume.Simulation;
using TcmuSharedVolume.Tests.EndToEnd;
using TcmuSharedVolume.Tests.Scsi;
using TcmuSharedVolume.Volumes;
using static TcmuSharedVolume.Tests.Tcmu.RingTestKit;

namespace TcmuSharedVolume.Tests.Tcmu;

/// <summary>
/// The event loop with a store that finishes READ and WRITE on its own thread (as RBD does,
/// docs/architecture.md §2): such a command leaves its worker when it is started, and the
/// store's thread completes and kicks it. A file behind <see cref="ThreadedAsyncStore"/>.
/// </summary>
public sealed class RingEventLoopAsyncTests : IDisposable
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(20);
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "tsv-async-" + Guid.NewGuid().ToString("N"));
    private readonly ThreadedAsyncStore _store;
    private readonly Volume _volume;
    private readonly VolumePath _path;
    private readonly SimulatedDevice _device = new("async", cmdrSize: 64 * 1024 - 128, dataBlocks: 128);

    public RingEventLoopAsyncTests()
    {
        Directory.CreateDirectory(_directory);
        string image = Path.Combine(_directory, "vol.img");
        _store = new ThreadedAsyncStore(SparseFileStore.Open(image, new BackingStoreOptions { CreateSizeBytes = 16 << 20 }));
        _volume = new Volume(image, _store, 512, VolumeIdentity.FromBackingPath(image), new InMemoryReservationStore());
        _path = _volume.AddPath("user_1/async", TwoPathRig.Nexus("iqn.2026-12.test:node1", 1));
    }

    public void Dispose()
    {
        _device.Dispose();
        _volume.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    private List<(RingSimulator.Submitted S, uint Lba)> Submit(int count, bool write, uint firstLba)
    {
        var submitted = new List<(RingSimulator.Submitted, uint)>();
        _device.Quiet = true;
        for (int i = 0; i < count; i++)
        {
            uint lba = firstLba + 8 * (uint)i;
            var s = write
                ? _device.Sim.Submit(Write10(lba, 8), dataOut: PatternExecutor.PatternFor(lba, 4096), fragment: i % 3 == 0)
                : _device.Sim.Submit(Read10(lba, 8), dataInLength: 4096, fragment: i % 3 == 0);
            submitted.Add((s, lba));
        }
        _device.Quiet = false;
        _device.Source.Signal();
        return submitted;
    }

    private void AssertGood(IEnumerable<(RingSimulator.Submitted S, uint Lba)> submitted, bool read)
    {
        foreach (var (s, lba) in submitted)
        {
            var done = _device.Sim.ForTicket(s.Ticket);
            Assert.NotNull(done);
            Assert.Equal((byte)ScsiStatus.Good, done.Status);
            if (read) Assert.Equal(PatternExecutor.PatternFor(lba, 4096), done.DataIn);
        }
        Assert.Null(_device.Sim.BrokenReason);
    }

    [Fact]
    public void MoreCommandsAreInTheStoreThanTheLoopHasWorkers()
    {
        using var loop = new RingEventLoop(workerCount: 2);
        loop.Add(_device.Ring, _device.Source, new VolumePathExecutor(_path));
        _store.Hold();
        var writes = Submit(32, write: true, firstLba: 0);
        // All 32 started with 2 workers: each left its worker when it went to the store.
        Assert.True(Wait.Until(() => _store.Pending == 32), $"{_store.Pending} of 32 in the store");
        Assert.Equal(0, _device.Sim.CompletedCount);
        Assert.Equal(32, _path.InFlight);
        _store.Release();
        Assert.True(_device.Sim.WaitForCompletions(32, Long));
        AssertGood(writes, read: false);

        var reads = Submit(32, write: false, firstLba: 0);
        Assert.True(_device.Sim.WaitForCompletions(64, Long));
        AssertGood(reads, read: true);
        Assert.True(Wait.Until(() => _path.InFlight == 0));
        Assert.Equal(64, _path.Metrics.Snapshot().ReadCommands + _path.Metrics.Snapshot().WriteCommands);
        Assert.True(loop.Stop(Long));
    }

    [Fact]
    public void RemoveWaitsForCommandsStillInTheStore()
    {
        using var loop = new RingEventLoop(workerCount: 2);
        loop.Add(_device.Ring, _device.Source, new VolumePathExecutor(_path));
        _store.Hold();
        var writes = Submit(4, write: true, firstLba: 64);
        Assert.True(Wait.Until(() => _store.Pending == 4));
        // The store's thread will still complete them and kick: the mapping must stay.
        Assert.False(loop.Remove(_device.Ring, TimeSpan.Zero));
        Assert.False(loop.Remove(_device.Ring, TimeSpan.FromMilliseconds(200)));
        _store.Release();
        Assert.True(loop.Remove(_device.Ring, Long));
        Assert.Equal(4, _device.Sim.CompletedCount);
        AssertGood(writes, read: false);
        Assert.Equal(0, _device.Ring.Outstanding);
    }

    [Fact]
    public void StopWaitsForCommandsStillInTheStore()
    {
        var loop = new RingEventLoop(workerCount: 2);
        loop.Add(_device.Ring, _device.Source, new VolumePathExecutor(_path));
        _store.Hold();
        var writes = Submit(6, write: true, firstLba: 128);
        Assert.True(Wait.Until(() => _store.Pending == 6));
        var release = new Thread(() =>
        {
            Thread.Sleep(300);
            _store.Release();
        });
        release.Start();
        Assert.True(loop.Stop(Long));
        Assert.Equal(6, _device.Sim.CompletedCount);
        AssertGood(writes, read: false);
        release.Join();
        loop.Dispose();
    }

    [Fact]
    public unsafe void AKickThatFailsOnTheStoresThreadLosesTheRing()
    {
        var lost = new List<string>();
        var notifier = new FailingNotifier(_device.Sim);
        using var ring = new TcmuRing(_device.Sim.Map, _device.Sim.MapLength, notifier, "async-kick");
        using var loop = new RingEventLoop(workerCount: 2, ringLost: (r, why) => { lock (lost) lost.Add(why); });
        loop.Add(ring, _device.Source, new VolumePathExecutor(_path));
        _store.Hold();
        Submit(1, write: true, firstLba: 256);
        Assert.True(Wait.Until(() => _store.Pending == 1));
        notifier.Fail = true;
        _store.Release();
        Assert.True(Wait.Until(() => { lock (lost) return lost.Count == 1; }));
        Assert.Contains("kick failed", lost[0]);
        Assert.True(loop.Remove(ring, Long));
    }

    private sealed class FailingNotifier(RingSimulator sim) : IRingNotifier
    {
        public volatile bool Fail;

        public void Kick()
        {
            if (Fail) throw new IOException("write to /dev/uio0: No such device");
            sim.Kick();
        }
    }
}
