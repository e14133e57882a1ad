using TcmuSharedVolume.Scsi;
using TcmuSharedVolume.Volumes;
using static TcmuSharedVolume.Tests.Scsi.ScsiFixture;

namespace TcmuSharedVolume.Tests.Scsi;

/// <summary>
/// READ and WRITE on a store that finishes them on its own thread (docs/architecture.md §2):
/// the command set starts the request and returns, the store's completion gives the status.
/// Against a file through <see cref="ThreadedAsyncStore"/>; RBD's own in Backends/Rbd.
/// </summary>
public sealed class AsyncTransferTests : IDisposable
{
    private const int Bs = BlockSize;
    private const int ENOSPC = 28, ESHUTDOWN = 108, ETIMEDOUT = 110;
    private static readonly SenseCode SpaceAllocationFailed = new(SenseKey.DataProtect, 0x27, 0x07);
    private readonly ScsiFixture _f = new();
    private readonly ThreadedAsyncStore _store;
    private readonly Volume _volume;
    private readonly VolumePath _a;
    private readonly VolumePath _b;

    public AsyncTransferTests()
    {
        ThreadedAsyncStore? store = null;
        _volume = _f.CreateVolume(1 << 20, wrap: s => store = new ThreadedAsyncStore(s));
        _store = store!;
        _a = _volume.AddPath("a", Nexus("iqn.2024-01.test:node1", 1));
        _b = _volume.AddPath("b", Nexus("iqn.2024-01.test:node2", 2));
    }

    public void Dispose() => _f.Dispose();

    private static byte[] Pattern(int length, int seed)
    {
        var b = new byte[length];
        new Random(seed).NextBytes(b);
        return b;
    }

    [Fact]
    public void ReadAndWriteFinishOnTheStoresThreadWithTheirData()
    {
        var data = Pattern(24 * Bs, 1);
        var w = OutLater(_a, Cdb.Write10(40, 24), data, segments: 5);
        Assert.True(w.Later);
        w.Result.AssertGood();
        var r = InLater(_b, Cdb.Read10(40, 24), 24 * Bs, segments: 4);
        Assert.True(r.Later);
        r.Result.AssertGood();
        Assert.Equal(24 * Bs, r.Result.DataInLength);
        Assert.Equal(data, r.Result.DataIn);
        // A transport without a completion (no later) gets the same, synchronously.
        var plain = In(_a, Cdb.Read10(40, 24), 24 * Bs);
        plain.AssertGood();
        Assert.Equal(data, plain.DataIn);
        Assert.Equal(0, _a.InFlight + _b.InFlight);
    }

    [Fact]
    public void WhatIsNotOneWholeTransferFinishesAtOnce()
    {
        Assert.False(RunLater(_a, Cdb.Rw10(OperationCode.SynchronizeCache10, 0, 0)).Later);
        Assert.False(OutLater(_a, Cdb.Write10(0, 0), []).Later);                 // nothing to move
        var shortRead = InLater(_a, Cdb.Read10(0, 2), 3 * Bs);                    // buffer longer than the transfer
        Assert.False(shortRead.Later);
        shortRead.Result.AssertGood();
        Assert.Equal(2 * Bs, shortRead.Result.DataInLength);
        Assert.False(InLater(_a, Cdb.Read10(2047, 2), 2 * Bs).Later);              // out of range: refused first
        Assert.True(OutLater(_a, Cdb.Write10(0, 1, flags: 0x08), new byte[Bs]).Later);
    }

    [Fact]
    public void ACommandStaysCountedOnItsPathUntilTheStoreHasFinishedIt()
    {
        _store.Hold();
        using var data = NativeData.From(Pattern(8 * Bs, 2));
        var command = new ScsiCommand();
        command.SetCdb(Cdb.Write10(0, 8));
        command.Data = data.Buffer;
        var done = new LaterCompletion();
        command.Completion = done;
        Assert.False(CommandSet.Execute(_a, command));
        Assert.Equal(1, _a.InFlight);
        // PREEMPT AND ABORT's drain must wait for it: the write is still to come.
        Assert.False(_volume.DrainCommands([_a.Nexus!], TimeSpan.FromMilliseconds(100)));
        Assert.True(_volume.DrainCommands([_b.Nexus!], TimeSpan.FromMilliseconds(100)));
        Assert.Equal(0, done.Count);
        _store.Release();
        Assert.True(done.Wait(TimeSpan.FromSeconds(10)));
        Assert.Equal(ScsiStatus.Good, command.Status);
        Assert.Equal(0, _a.InFlight);
        Assert.True(_volume.DrainCommands([_a.Nexus!], TimeSpan.Zero));
        Assert.Equal(Pattern(8 * Bs, 2), In(_b, Cdb.Read10(0, 8), 8 * Bs).DataIn);
    }

    [Fact]
    public void CompareAndWriteWaitsForWritesStillInTheStore()
    {
        var old = Pattern(Bs, 3);
        Out(_a, Cdb.Write10(7, 1), old).AssertGood();
        _store.Hold();
        using var data = NativeData.From(Pattern(Bs, 4));
        var write = new ScsiCommand();
        write.SetCdb(Cdb.Write10(7, 1));
        write.Data = data.Buffer;
        var written = new LaterCompletion();
        write.Completion = written;
        Assert.False(CommandSet.Execute(_b, write));

        // Compares against the old block: it may only run before the write started (it did
        // not) or after it completed, never between, so it waits and then miscompares.
        Result? caw = null;
        var t = new Thread(() => caw = Out(_a, Cdb.CompareAndWrite(7, 1), [.. old, .. Pattern(Bs, 5)]));
        t.Start();
        Assert.False(t.Join(300), "COMPARE AND WRITE ran while a write was in the store");
        _store.Release();
        Assert.True(t.Join(10_000));
        Assert.True(written.Wait(TimeSpan.FromSeconds(10)));
        caw!.AssertCheck(SenseCode.MiscompareDuringVerifyOperation);
        Assert.Equal(Pattern(Bs, 4), In(_a, Cdb.Read10(7, 1), Bs).DataIn);
    }

    [Fact]
    public void StoreErrorsGiveTheSameStatusAsWithoutAThread()
    {
        _store.FailErrno = ESHUTDOWN; // Ceph fenced this host
        InLater(_a, Cdb.Read10(0, 1), Bs).Result.AssertCheck(SenseCode.LogicalUnitNotReadyCauseNotReportable);
        OutLater(_a, Cdb.Write10(0, 1), new byte[Bs]).Result.AssertCheck(SenseCode.LogicalUnitNotReadyCauseNotReportable);
        _store.FailErrno = ETIMEDOUT;
        Assert.Equal(ScsiStatus.Busy, InLater(_a, Cdb.Read10(0, 1), Bs).Result.Status);
        Assert.Equal(ScsiStatus.Busy, OutLater(_a, Cdb.Write10(0, 1), new byte[Bs]).Result.Status);
        _store.FailErrno = 5;
        InLater(_a, Cdb.Read10(0, 1), Bs).Result.AssertCheck(SenseCode.UnrecoveredReadError);
        OutLater(_a, Cdb.Write10(0, 1), new byte[Bs]).Result.AssertCheck(SenseCode.WriteError);
        Assert.Equal(0, _volume.LatchedWriteErrno); // a cached write's error is its own
        _store.FailErrno = ENOSPC;
        OutLater(_a, Cdb.Write10(0, 1, flags: 0x08), new byte[Bs]).Result.AssertCheck(SpaceAllocationFailed);
        Assert.Equal(0, _volume.LatchedWriteErrno); // refused allocation loses nothing
        Assert.Equal(0, _a.InFlight);
    }

    [Fact]
    public void AFailedFuaWriteLatchesAndLaterFuaWritesReportIt()
    {
        _store.FailErrno = 5;
        OutLater(_a, Cdb.Write10(0, 1, flags: 0x08), new byte[Bs]).Result.AssertCheck(SenseCode.WriteError);
        Assert.Equal(5, _volume.LatchedWriteErrno);
        _store.FailErrno = 0;
        // The store wrote it, but GOOD on a FUA write would promise durability the latch denies.
        var fua = OutLater(_b, Cdb.Write10(1, 1, flags: 0x08), Pattern(Bs, 6));
        Assert.True(fua.Later);
        fua.Result.AssertCheck(SenseCode.WriteError);
        OutLater(_b, Cdb.Write10(2, 1), Pattern(Bs, 7)).Result.AssertGood(); // a cached write goes on
        _volume.ClearWriteError();
        OutLater(_b, Cdb.Write10(1, 1, flags: 0x08), Pattern(Bs, 6)).Result.AssertGood();
    }
}
