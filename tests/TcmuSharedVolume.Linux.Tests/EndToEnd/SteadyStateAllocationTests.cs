using System.Buffers.Binary;
using TcmuSharedVolume.Backends;
using TcmuSharedVolume.Linux.Tcmu;
using TcmuSharedVolume.Reservations;
using TcmuSharedVolume.Scsi;
using TcmuSharedVolume.Simulation;
using TcmuSharedVolume.Tests.Tcmu;
using TcmuSharedVolume.Volumes;

namespace TcmuSharedVolume.Tests.EndToEnd;

/// <summary>
/// The per-command path (ring drain → command set → backing store → completion → kick) allocates
/// nothing once warm: at hundreds of thousands of commands a second, garbage means GC pauses in
/// the middle of I/O. Runs inline on the test thread, so the thread's allocation counter sees it all.
/// </summary>
public sealed unsafe class SteadyStateAllocationTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "tsv-alloc-" + Guid.NewGuid().ToString("N"));
    private readonly Volume _volume;
    private readonly RingSimulator _sim;
    private readonly TcmuRing _ring;
    private readonly Consumer _consumer;

    private sealed class Consumer(TcmuRing ring, ICommandExecutor executor) : IRingConsumer
    {
        public int Good, NotGood;

        public void OnCommand(ScsiCommand command)
        {
            executor.Execute(command);
            if (command.Status == ScsiStatus.Good) Good++;
            else NotGood++;
            ring.Complete(command);
        }

        public void OnTaskManagement(TmrType type, ReadOnlySpan<ushort> commandIds) { }
    }

    public SteadyStateAllocationTests()
    {
        Directory.CreateDirectory(_directory);
        string image = Path.Combine(_directory, "vol.img");
        var store = BackingStores.Open(image, new BackingStoreOptions { CreateSizeBytes = 64 << 20 });
        _volume = new Volume(image, store, 512, VolumeIdentity.FromBackingPath(image), new InMemoryReservationStore());
        var nexus = TwoPathRig.Nexus("iqn.2026-11.test:node1", 1);
        var path = _volume.AddPath("user_1/vol", nexus);
        _sim = new RingSimulator(cmdrSize: 64 * 1024 - 128, dataBlocks: 512, maxCommands: 128, recordCompletions: false);
        _ring = new TcmuRing(_sim.Map, _sim.MapLength, new SimulatorNotifier(_sim), "alloc");
        _consumer = new Consumer(_ring, new VolumePathExecutor(path));
    }

    public void Dispose()
    {
        _ring.Dispose();
        _sim.Dispose();
        _volume.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    private void Batch(byte[] cdb, byte[] dataOut, int dataIn, int depth, ref uint lba, uint stride, uint lbaLimit)
    {
        for (int i = 0; i < depth; i++)
        {
            BinaryPrimitives.WriteUInt32BigEndian(cdb.AsSpan(2), lba);
            lba = (lba + stride) % lbaLimit;
            if (!_sim.TrySubmit(cdb, dataOut, dataIn, out _)) throw new InvalidOperationException("ring full");
        }
        _ring.Drain(_consumer);
        _ring.Flush();
    }

    [Theory]
    [InlineData(0x28, 8, 1)]
    [InlineData(0x28, 8, 32)]
    [InlineData(0x2A, 8, 1)]
    [InlineData(0x2A, 8, 32)]
    [InlineData(0x28, 2048, 1)] // 1 MiB
    [InlineData(0x2A, 2048, 1)]
    public void ReadAndWriteAllocateNothingOnceWarm(byte op, ushort blocks, int depth)
    {
        var cdb = new byte[10];
        cdb[0] = op;
        BinaryPrimitives.WriteUInt16BigEndian(cdb.AsSpan(7), blocks);
        byte[] dataOut = op == 0x2A ? new byte[blocks * 512] : [];
        int dataIn = op == 0x28 ? blocks * 512 : 0;
        uint lba = 0, limit = (uint)(_volume.BlockCount - blocks);
        // Odd stride: offsets differ from batch to batch, so every command does real I/O.
        uint stride = blocks * 7u + 1;

        for (int i = 0; i < 200; i++) Batch(cdb, dataOut, dataIn, depth, ref lba, stride, limit);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 200; i++) Batch(cdb, dataOut, dataIn, depth, ref lba, stride, limit);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(400 * depth, _consumer.Good);
        Assert.Equal(0, _consumer.NotGood);
        Assert.Equal(400L * depth, _sim.CompletedCount);
        Assert.Equal(0, allocated);
    }
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ProcessWideAllocationCollection
{
    public const string Name = "process-wide allocation counting";
}

/// <summary>
/// The same through <see cref="RingEventLoop"/>: the loop and worker threads are not the test's,
/// so this counts the whole process, alone (no other test runs beside it). Anything the loop does
/// per command would cost at least an object header (24 bytes) per command; the bound of one byte
/// per command leaves room only for the runtime's own occasional work (tiered JIT, timers).
/// </summary>
[Collection(ProcessWideAllocationCollection.Name)]
public sealed unsafe class LoopSteadyStateAllocationTests
{
    [Fact]
    public void CommandsThroughTheEventLoopAllocateNothingOnceWarm()
    {
        using var rig = new TwoPathRig(workers: 2, cmdrSize: 64 * 1024 - 128, dataBlocks: 256);
        // The rig's simulators record completions (they allocate); this one does not.
        using var sim = new RingSimulator(cmdrSize: 64 * 1024 - 128, dataBlocks: 256, maxCommands: 128, recordCompletions: false);
        using var source = new EventFdSource();
        sim.Notified += source.Signal;
        using var ring = new TcmuRing(sim.Map, sim.MapLength, new SimulatorNotifier(sim), "alloc-loop");
        rig.Loop.Add(ring, source, new VolumePathExecutor(rig.PathA));
        try
        {
            Run(sim);
        }
        finally
        {
            // Before the ring and its memory go away.
            Assert.True(rig.Loop.Remove(ring, TwoPathRig.Timeout));
        }
    }

    private static void Run(RingSimulator sim)
    {

        var read = new byte[10];
        read[0] = 0x28;
        read[8] = 8;
        var write = (byte[])read.Clone();
        write[0] = 0x2A;
        var dataOut = new byte[4096];
        long submitted = 0;
        void Batches(int count)
        {
            for (int b = 0; b < count; b++)
            {
                for (int i = 0; i < 32; i++)
                {
                    var cdb = i % 2 == 0 ? read : write;
                    BinaryPrimitives.WriteUInt32BigEndian(cdb.AsSpan(2), (uint)((submitted * 8) % 30000));
                    bool ok = cdb == read ? sim.TrySubmit(cdb, default, 4096, out _) : sim.TrySubmit(cdb, dataOut, 0, out _);
                    Assert.True(ok);
                    submitted++;
                }
                Assert.True(sim.WaitForCompletions(submitted, TwoPathRig.Timeout));
            }
        }

        Batches(300);
        long before = GC.GetTotalAllocatedBytes(precise: true);
        Batches(300);
        long allocated = GC.GetTotalAllocatedBytes(precise: true) - before;
        Assert.True(allocated < 300 * 32, $"{allocated} bytes allocated for {300 * 32} commands through the event loop");
    }
}
