using System.Buffers.Binary;
using TcmuSharedVolume.Backends;
using TcmuSharedVolume.Scsi;
using TcmuSharedVolume.Tests.Scsi;
using static TcmuSharedVolume.Tests.Scsi.ScsiFixture;

namespace TcmuSharedVolume.Tests.Volumes;

/// <summary>dev_size written on a live backstore: the volume grows and every nexus is told.</summary>
public sealed class ResizeTests : IDisposable
{
    private readonly ScsiFixture _f = new();

    public void Dispose() => _f.Dispose();

    private static ulong ReadCapacity16LastLba(Scsi.Result r)
    {
        r.AssertGood();
        return BinaryPrimitives.ReadUInt64BigEndian(r.DataIn);
    }

    [Fact]
    public void GrowingRaisesCapacityDataHasChangedOnEveryPathAndReadCapacityFollows()
    {
        var volume = _f.CreateVolume(4 << 20);
        var a = volume.AddPath("vol-a", Nexus("iqn.2024-01.test:a", 1));
        var b = volume.AddPath("vol-b", Nexus("iqn.2024-01.test:b", 2));

        volume.Resize(8 << 20);

        foreach (var path in new[] { a, b })
        {
            // The first command after the change reports it (SBC-3 4.7); the next one runs.
            Run(path, [OperationCode.TestUnitReady, 0, 0, 0, 0, 0]).AssertCheck(SenseCode.CapacityDataHasChanged);
            Run(path, [OperationCode.TestUnitReady, 0, 0, 0, 0, 0]).AssertGood();
            var rc = In(path, Cdb.ServiceActionIn16(OperationCode.ServiceActionReadCapacity16, 0, 32), 32);
            Assert.Equal((ulong)((8 << 20) / BlockSize - 1), ReadCapacity16LastLba(rc));
        }
        Assert.Equal(8 << 20, new FileInfo(volume.BackingPath).Length);
        // The new range is a hole: growing never allocates.
        Assert.True(AllocatedBytes(volume.BackingPath) < 4 << 20);
        // And it is usable: a write to the new last block succeeds.
        Out(a, Cdb.Write10((uint)((8 << 20) / BlockSize - 1), 1), new byte[BlockSize]).AssertGood();
    }

    [Fact]
    public void ShrinkingIsRefusedAndChangesNothing()
    {
        var volume = _f.CreateVolume(4 << 20);
        var a = volume.AddPath("vol-a", Nexus("iqn.2024-01.test:a", 1));

        var e = Assert.Throws<BackingStoreException>(() => volume.Resize(2 << 20));
        Assert.Equal(22, e.Errno);
        Assert.Equal(4 << 20, volume.Store.SizeBytes);
        Run(a, [OperationCode.TestUnitReady, 0, 0, 0, 0, 0]).AssertGood(); // no unit attention
    }

    [Fact]
    public void ASizeThatIsNotWholeBlocksIsRefused()
    {
        var volume = _f.CreateVolume(4 << 20);
        Assert.Throws<BackingStoreException>(() => volume.Resize((4 << 20) + 100));
        Assert.Equal(4 << 20, volume.Store.SizeBytes);
    }

    [Fact]
    public void TheSameSizeIsANoOpWithoutUnitAttention()
    {
        var volume = _f.CreateVolume(4 << 20);
        var a = volume.AddPath("vol-a", Nexus("iqn.2024-01.test:a", 1));
        volume.Resize(4 << 20);
        Run(a, [OperationCode.TestUnitReady, 0, 0, 0, 0, 0]).AssertGood();
    }
}
