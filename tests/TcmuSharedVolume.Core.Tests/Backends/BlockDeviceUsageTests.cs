using System.Text;
using TcmuSharedVolume.Backends;

namespace TcmuSharedVolume.Tests.Backends;

/// <summary>
/// The refusal reasons, from a fake sysfs and mountinfo laid out as the kernel lays them out:
/// sysfs <c>dev/block/M:m</c> links into <c>devices/…/block/DISK[/PART]</c>, with
/// <c>partition</c>, <c>holders/</c> and <c>slaves/</c>.
/// </summary>
public sealed class BlockDeviceUsageTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("tsv-usage-").FullName;
    private string Sys => Path.Combine(_root, "sys");
    private string Proc => Path.Combine(_root, "proc");

    public BlockDeviceUsageTests()
    {
        Directory.CreateDirectory(Path.Combine(Proc, "self"));
        MountInfo("22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw");
        Device("8:0", "devices/pci0/host0/block/sda");
        Device("8:1", "devices/pci0/host0/block/sda/sda1", partition: true);
        Device("8:2", "devices/pci0/host0/block/sda/sda2", partition: true);
        Device("8:16", "devices/pci0/host1/block/sdb");
        Device("8:17", "devices/pci0/host1/block/sdb/sdb1", partition: true);
        Device("7:0", "devices/virtual/block/loop0");
        Device("253:0", "devices/virtual/block/dm-0", dmName: "vg-pool_tdata");
        Device("253:3", "devices/virtual/block/dm-3", dmName: "vg-data");
    }

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private void MountInfo(params string[] lines) =>
        File.WriteAllText(Path.Combine(Proc, "self", "mountinfo"), string.Join('\n', lines) + "\n");

    private void Device(string number, string node, bool partition = false, string? dmName = null)
    {
        var dir = Directory.CreateDirectory(Path.Combine(Sys, node)).FullName;
        Directory.CreateDirectory(Path.Combine(dir, "holders"));
        Directory.CreateDirectory(Path.Combine(dir, "slaves"));
        if (partition) File.WriteAllText(Path.Combine(dir, "partition"), "1\n");
        if (dmName is not null)
        {
            Directory.CreateDirectory(Path.Combine(dir, "dm"));
            File.WriteAllText(Path.Combine(dir, "dm", "name"), dmName + "\n");
        }
        Directory.CreateDirectory(Path.Combine(Sys, "dev", "block"));
        Directory.CreateSymbolicLink(Path.Combine(Sys, "dev", "block", number), Path.Combine("..", "..", node));
    }

    private static void Link(string fromDir, string name, string toNode) =>
        Directory.CreateSymbolicLink(Path.Combine(fromDir, name), toNode);

    private string Node(string node) => Path.Combine(Sys, node);

    private BlockDeviceUsage Usage((uint, uint)? root = null) => new(Sys, Proc, root ?? (8, 1));

    [Fact]
    public void AnUnusedDeviceOnAnotherDiskIsServed()
    {
        Assert.Null(Usage().WhyRefused(8, 17));
        Assert.Null(Usage().WhyRefused(7, 0));
        Assert.Null(Usage().WhyRefused(9, 9)); // not in sysfs at all: the open decides
    }

    [Fact]
    public void AMountedDeviceIsRefusedWithItsMountPoint()
    {
        MountInfo("22 1 8:1 / / rw - ext4 /dev/sda1 rw", @"40 22 253:3 / /srv/my\040data rw - xfs /dev/mapper/vg-data rw");
        Assert.Equal("it is mounted on /srv/my data", Usage().WhyRefused(253, 3));
    }

    [Fact]
    public void ADeviceMapperComponentIsRefusedWithItsHolder()
    {
        // A PV (sdb1) under the thin pool's data device.
        Link(Path.Combine(Node("devices/pci0/host1/block/sdb/sdb1"), "holders"), "dm-0", Node("devices/virtual/block/dm-0"));
        var why = Usage().WhyRefused(8, 17);
        Assert.StartsWith("it is a component of dm-0 (vg-pool_tdata)", why);
    }

    [Fact]
    public void APartitionOfTheRootDiskIsRefusedEvenWhenNotMounted()
    {
        Assert.Equal("it is partition sda2 of sda, the disk that holds the root file system", Usage().WhyRefused(8, 2));
        Assert.Equal("sda is the disk that holds the root file system", Usage().WhyRefused(8, 0));
    }

    [Fact]
    public void TheRootDiskIsFoundThroughDeviceMapperSlaves()
    {
        // Root on an LV (dm-3) whose PV is sdb1: sdb is the root disk, sda is not. An LV on top of
        // the root disk's VG stays allowed: it is not a partition of the disk.
        MountInfo("22 1 253:3 / / rw - ext4 /dev/mapper/vg-data rw");
        Link(Path.Combine(Node("devices/virtual/block/dm-3"), "slaves"), "sdb1", Node("devices/pci0/host1/block/sdb/sdb1"));
        var usage = Usage((253, 3));
        Assert.Equal("it is partition sdb1 of sdb, the disk that holds the root file system",
            new BlockDeviceUsage(Sys, Path.Combine(_root, "noproc"), (253, 3)).WhyRefused(8, 17));
        Assert.Null(usage.WhyRefused(8, 2));
        Assert.Null(new BlockDeviceUsage(Sys, Path.Combine(_root, "noproc"), (253, 0)).WhyRefused(253, 3));
    }

    [Fact]
    public void APathThatIsNoBlockDeviceHasNothingToRefuse()
    {
        // A file or a character device is the open's business, not this check's.
        var file = Path.Combine(_root, "f.img");
        File.WriteAllBytes(file, [0]);
        Assert.Null(Usage().WhyRefused(file));
        Assert.Null(Usage().WhyRefused("/dev/null"));
        Assert.Null(Usage().WhyRefused(Path.Combine(_root, "missing")));
    }

    [Fact]
    public void NoRootDiskWhenRootIsNotOnABlockDevice()
    {
        Assert.Null(new BlockDeviceUsage(Sys, Proc, (0, 31)).WhyRefused(8, 2));
    }
}

public sealed class DeviceMapperTests
{
    [Theory]
    [InlineData("253:2 1", 253u, 2u, false)]
    [InlineData("253:2 7 8:5", 253u, 2u, true)]
    public void ReadsTheThinTable(string parameters, uint major, uint minor, bool external) =>
        Assert.Equal((major, minor, external), ThinVolume.ParseThinTable(parameters));

    [Theory]
    [InlineData("")]
    [InlineData("nonsense")]
    [InlineData("x:y 1")]
    public void AnUnreadableThinTableIsNotThin(string parameters) => Assert.Null(ThinVolume.ParseThinTable(parameters));

    [Theory]
    [InlineData("253:0 253:1 128 0 0", true)]
    [InlineData("253:0 253:1 128 0 1 skip_block_zeroing", false)]
    [InlineData("253:0 253:1 128 0 2 no_discard_passdown skip_block_zeroing", false)]
    [InlineData("253:0 253:1 128 0 1 ignore_discard", true)]
    public void APoolThatSkipsZeroingDoesNotPromiseZeroes(string parameters, bool zeroes) =>
        Assert.Equal(zeroes, ThinVolume.PoolZeroesNewBlocks(parameters));

    [Theory]
    [InlineData("0 -", 0L)]
    [InlineData("131072 262143", 262144L * 512)]
    [InlineData("Fail", null)]
    [InlineData("", null)]
    [InlineData("12 x", null)]
    public void TheMappedEndComesFromTheHighestMappedSector(string status, long? end) =>
        Assert.Equal(end, ThinVolume.ParseMappedEnd(status));

    [Fact]
    public void ParsesTheTargetsOfADmTableStatusAnswer()
    {
        // data_start 312; each dm_target_spec's next counts from the first spec.
        var buffer = new byte[1024];
        int first = 312;
        int second = Spec(buffer, first, 0, 2048, "linear", "8:17 2048", nextFromFirst: 0);
        Spec(buffer, first, second, 4096, "thin", "253:2 1", nextFromFirst: -1);
        var targets = DeviceMapper.ParseTargets(buffer, (uint)first, 2);
        Assert.Equal(
            [new DmTarget("linear", 0, 2048, "8:17 2048"), new DmTarget("thin", 2048, 4096, "253:2 1")],
            targets);
    }

    /// <summary>Writes a spec at first+at; returns where the next one starts (relative to first).</summary>
    private static int Spec(byte[] b, int first, int at, ulong length, string type, string parameters, int nextFromFirst)
    {
        int p = first + at;
        BitConverter.TryWriteBytes(b.AsSpan(p), at == 0 ? 0UL : 2048UL);
        BitConverter.TryWriteBytes(b.AsSpan(p + 8), length);
        Encoding.ASCII.GetBytes(type).CopyTo(b, p + 24);
        Encoding.ASCII.GetBytes(parameters).CopyTo(b, p + 40);
        int next = (at + 40 + parameters.Length + 1 + 7) & ~7;
        BitConverter.TryWriteBytes(b.AsSpan(p + 20), nextFromFirst < 0 ? 0u : (uint)next);
        return next;
    }
}
