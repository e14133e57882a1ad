using TcmuSharedVolume.Scsi;
using TcmuSharedVolume.Volumes;
using static TcmuSharedVolume.Tests.Scsi.ScsiFixture;

namespace TcmuSharedVolume.Tests.Scsi;

/// <summary>How a backing store's errno becomes the command's status.</summary>
public sealed class StoreErrnoSenseTests : IDisposable
{
    private const int Bs = BlockSize;
    private const int ESHUTDOWN = 108; // Ceph: this client was blocklisted
    private const int ETIMEDOUT = 110;
    private readonly ScsiFixture _f = new();
    private readonly FaultStore _store;
    private readonly VolumePath _a;

    public StoreErrnoSenseTests()
    {
        FaultStore? store = null;
        var volume = _f.CreateVolume(1 << 20, wrap: s => store = new FaultStore(s));
        _store = store!;
        _a = volume.AddPath("a", Nexus("iqn.2024-01.test:node1", 1));
    }

    public void Dispose() => _f.Dispose();

    [Fact]
    public void AFencedStoreIsNotReadyForEveryCommand()
    {
        _store.ReadErrno = ESHUTDOWN;
        _store.WriteErrno = ESHUTDOWN;
        _store.FlushErrno = ESHUTDOWN;
        In(_a, Cdb.Read10(0, 1), Bs).AssertCheck(SenseCode.LogicalUnitNotReadyCauseNotReportable);
        Out(_a, Cdb.Write10(0, 1), new byte[Bs]).AssertCheck(SenseCode.LogicalUnitNotReadyCauseNotReportable);
        Run(_a, Cdb.Rw10(OperationCode.SynchronizeCache10, 0, 0)).AssertCheck(SenseCode.LogicalUnitNotReadyCauseNotReportable);
        var list = Cdb.UnmapList((0, 8));
        Out(_a, Cdb.Unmap((ushort)list.Length), list).AssertCheck(SenseCode.LogicalUnitNotReadyCauseNotReportable);
    }

    [Fact]
    public void AStoreTimeoutIsBusy()
    {
        _store.ReadErrno = ETIMEDOUT;
        _store.WriteErrno = ETIMEDOUT;
        _store.FlushErrno = ETIMEDOUT;
        Assert.Equal(ScsiStatus.Busy, In(_a, Cdb.Read10(0, 1), Bs).Status);
        Assert.Equal(ScsiStatus.Busy, Out(_a, Cdb.Write10(0, 1), new byte[Bs]).Status);
        Assert.Equal(ScsiStatus.Busy, Run(_a, Cdb.Rw10(OperationCode.SynchronizeCache10, 0, 0)).Status);
    }

    [Fact]
    public void OtherErrorsStayMediumErrors()
    {
        _store.ReadErrno = 5;
        _store.WriteErrno = 5;
        _store.FlushErrno = 5;
        In(_a, Cdb.Read10(0, 1), Bs).AssertCheck(SenseCode.UnrecoveredReadError);
        Out(_a, Cdb.Write10(0, 1), new byte[Bs]).AssertCheck(SenseCode.WriteError);
        Run(_a, Cdb.Rw10(OperationCode.SynchronizeCache10, 0, 0)).AssertCheck(SenseCode.WriteError);
    }
}
