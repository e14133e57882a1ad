using TcmuSharedVolume.Backends;
using TcmuSharedVolume.Interop;
using TcmuSharedVolume.Reservations;
using TcmuSharedVolume.Scsi;
using TcmuSharedVolume.Tests.Scsi;
using TcmuSharedVolume.Volumes;
using Xunit.Abstractions;

namespace TcmuSharedVolume.Tests.Reservations;

/// <summary>
/// PREEMPT AND ABORT is a fence: once it returns GOOD, no write of the preempted node may reach
/// the medium (SPC-4 "Preempting and aborting"). These tests drive the whole command path
/// (unit attentions, gate, in-flight accounting, command set, store) from several threads,
/// and hold a victim's write in the window between the reservation gate and the store.
/// </summary>
[Collection(nameof(GateHookCollection))]
public sealed class PreemptAndAbortRaceTests(ITestOutputHelper output) : IDisposable
{
    private const ulong Key1 = 0xA1, Key2 = 0xB2;
    private const byte Wero = (byte)PersistentReservationType.WriteExclusiveRegistrantsOnly;
    private readonly ScsiFixture _f = new();

    public void Dispose()
    {
        CommandSet.GatePassedForTests = null;
        _f.Dispose();
    }

    /// <summary>Counts the writes that reach the store once the fence has been reported.</summary>
    private sealed class FenceWatchStore(IBackingStore inner) : IBackingStore
    {
        public volatile bool FenceReported;
        public int WritesAfterFence;
        public int Writes;

        private void Landing()
        {
            Interlocked.Increment(ref Writes);
            if (FenceReported) Interlocked.Increment(ref WritesAfterFence);
        }

        public long SizeBytes => inner.SizeBytes;
        public bool SupportsUnmap => inner.SupportsUnmap;
        public bool UnmapReadsZeroes => inner.UnmapReadsZeroes;
        public int UnmapGranularity => inner.UnmapGranularity;
        public void Read(ReadOnlySpan<IoVec> destination, long offset) => inner.Read(destination, offset);
        public void Read(Span<byte> destination, long offset) => inner.Read(destination, offset);
        public void Write(ReadOnlySpan<IoVec> source, long offset, bool forceUnitAccess) { Landing(); inner.Write(source, offset, forceUnitAccess); }
        public void Write(ReadOnlySpan<byte> source, long offset, bool forceUnitAccess) { Landing(); inner.Write(source, offset, forceUnitAccess); }
        public void Flush() => inner.Flush();
        public void Unmap(long offset, long length) { Landing(); inner.Unmap(offset, length); }
        public void WriteZeroes(long offset, long length) { Landing(); inner.WriteZeroes(offset, length); }
        public AllocationState GetAllocation(long offset, out long runLength) => inner.GetAllocation(offset, out runLength);
        public void Dispose() => inner.Dispose();
    }

    private sealed record Rig(Volume Volume, VolumePath Victim, VolumePath Preemptor, FenceWatchStore Store);

    private Rig NewRig(string name)
    {
        FenceWatchStore? store = null;
        var volume = _f.CreateVolume(1 << 20, name, wrap: s => store = new FenceWatchStore(s));
        var victim = volume.AddPath(name + "-a", ScsiFixture.Nexus("iqn.2024-01.test:node1", 1));
        var preemptor = volume.AddPath(name + "-b", ScsiFixture.Nexus("iqn.2024-01.test:node2", 2));
        Good(Prout(victim, 0x00, 0, PrTestKit.BasicList(0, Key1)), "node1 REGISTER");
        Good(Prout(preemptor, 0x00, 0, PrTestKit.BasicList(0, Key2)), "node2 REGISTER");
        Good(Prout(victim, 0x01, Wero, PrTestKit.BasicList(Key1, 0)), "node1 RESERVE WERO");
        return new Rig(volume, victim, preemptor, store!);
    }

    private static CommandResult Prout(VolumePath path, byte action, byte type, byte[] list) =>
        PrTestKit.Run(c => CommandSet.Execute(path, c), PrTestKit.PrOutCdb(action, type, list.Length), list);

    private static CommandResult PreemptAndAbort(VolumePath path) =>
        Prout(path, 0x05, Wero, PrTestKit.BasicList(Key2, Key1));

    private static CommandResult Write(VolumePath path, uint lba) =>
        PrTestKit.Run(c => CommandSet.Execute(path, c), Cdb.Write10(lba, 1), new byte[ScsiFixture.BlockSize]);

    private static void Good(CommandResult r, string what) => Assert.True(r.IsGood, $"{what}: expected GOOD, got {r}");

    [Fact]
    public void AWriteThatPassedTheGateIsWaitedForBeforeGood()
    {
        var rig = NewRig("held");
        using var passed = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        CommandSet.GatePassedForTests = p =>
        {
            if (!ReferenceEquals(p, rig.Victim)) return;
            passed.Set();
            release.Wait(TimeSpan.FromSeconds(10));
        };

        CommandResult? write = null;
        var writer = new Thread(() => write = Write(rig.Victim, 10));
        writer.Start();
        Assert.True(passed.Wait(TimeSpan.FromSeconds(10)), "node1's write did not pass the gate");

        CommandResult? preempt = null;
        var fencer = new Thread(() =>
        {
            preempt = PreemptAndAbort(rig.Preemptor);
            rig.Store.FenceReported = true;
        });
        fencer.Start();

        // The write is past the gate but has not reached the store: the fence must not be
        // reported until it has.
        Assert.False(fencer.Join(TimeSpan.FromMilliseconds(500)), "PREEMPT AND ABORT returned while node1's write was still on its way to the store");
        release.Set();
        Assert.True(writer.Join(TimeSpan.FromSeconds(10)));
        Assert.True(fencer.Join(TimeSpan.FromSeconds(10)));

        Good(write!, "node1 WRITE that passed the gate before the preemption");
        Good(preempt!, "node2 PREEMPT AND ABORT");
        Assert.Equal(1, rig.Store.Writes);
        Assert.Equal(0, rig.Store.WritesAfterFence);
        Assert.Equal(SenseCode.RegistrationsPreempted, Write(rig.Victim, 11).Sense);
        Assert.True(Write(rig.Victim, 12).IsConflict, "node1 WRITE after the preemption");
        Assert.Equal(0, rig.Store.WritesAfterFence);
    }

    [Fact]
    public void ADrainThatTimesOutFailsThePreemptAndKeepsTheFenceInForce()
    {
        var rig = NewRig("stuck");
        rig.Volume.Reservations.AbortDrainTimeout = TimeSpan.FromMilliseconds(200);
        using var passed = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        CommandSet.GatePassedForTests = p =>
        {
            if (!ReferenceEquals(p, rig.Victim)) return;
            passed.Set();
            release.Wait(TimeSpan.FromSeconds(10)); // a backing store that does not answer
        };

        var writer = new Thread(() => Write(rig.Victim, 10));
        writer.Start();
        Assert.True(passed.Wait(TimeSpan.FromSeconds(10)));

        var preempt = PreemptAndAbort(rig.Preemptor);
        Assert.Equal(ScsiStatus.CheckCondition, preempt.Status);
        Assert.Equal(SenseCode.InternalTargetFailure, preempt.Sense);

        release.Set();
        Assert.True(writer.Join(TimeSpan.FromSeconds(10)));
        CommandSet.GatePassedForTests = null;

        // The preemption itself was committed: node1 is no longer registered, node2 holds the
        // reservation, and node1's new writes are refused.
        var snapshot = rig.Volume.Reservations.Snapshot();
        Assert.DoesNotContain(snapshot.Registrations, r => r.Key == Key1);
        Assert.Equal(SenseCode.RegistrationsPreempted, Write(rig.Victim, 11).Sense);
        Assert.True(Write(rig.Victim, 12).IsConflict, "node1 WRITE after the failed PREEMPT AND ABORT");
        // A retry names a key that is no longer registered: RESERVATION CONFLICT, never GOOD.
        Assert.True(PreemptAndAbort(rig.Preemptor).IsConflict);
    }

    /// <summary>
    /// Many writers on the victim's path, PREEMPT AND ABORT from another path at a random moment:
    /// after GOOD nothing of the victim's reaches the store. The victim's threads yield between the
    /// gate and the store now and then, as a descheduled thread would; with the gate checked
    /// before the command was counted, 200 rounds saw 888 writes land after GOOD.
    /// </summary>
    [Fact]
    public void NoWriteOfThePreemptedNodeLandsAfterGoodUnderLoad()
    {
        int rounds = int.TryParse(Environment.GetEnvironmentVariable("TSV_RACE_ROUNDS"), out var r) ? r : 200;
        const int writers = 6;
        int totalWrites = 0, late = 0;
        var sw = System.Diagnostics.Stopwatch.StartNew();
        for (int round = 0; round < rounds; round++)
        {
            var rig = NewRig($"stress{round}");
            var seed = new ThreadLocal<Random>(() => new Random(Environment.CurrentManagedThreadId * 7919 + round));
            CommandSet.GatePassedForTests = p =>
            {
                if (!ReferenceEquals(p, rig.Victim)) return;
                int dice = seed.Value!.Next(8);
                if (dice == 0) Thread.Sleep(0);
                else if (dice == 1) Thread.Yield();
            };

            using var stop = new CancellationTokenSource();
            var threads = Enumerable.Range(0, writers).Select(i => new Thread(() =>
            {
                uint lba = (uint)i;
                while (!stop.IsCancellationRequested)
                    Write(rig.Victim, lba);
            })).ToArray();
            foreach (var t in threads) t.Start();
            Thread.SpinWait(Random.Shared.Next(20_000, 200_000));

            var preempt = PreemptAndAbort(rig.Preemptor);
            rig.Store.FenceReported = true;
            Good(preempt, $"round {round}: PREEMPT AND ABORT");
            Thread.SpinWait(50_000); // let any straggler land
            stop.Cancel();
            foreach (var t in threads) t.Join();
            CommandSet.GatePassedForTests = null;
            seed.Dispose();

            totalWrites += rig.Store.Writes;
            late += rig.Store.WritesAfterFence;
        }
        output.WriteLine($"{rounds} rounds, {totalWrites} writes of the victim reached the store, {late} after GOOD ({sw.ElapsedMilliseconds} ms)");
        Assert.Equal(0, late);
    }
}

/// <summary>Tests that set <see cref="CommandSet.GatePassedForTests"/> run one at a time.</summary>
[CollectionDefinition(nameof(GateHookCollection), DisableParallelization = true)]
public sealed class GateHookCollection;
