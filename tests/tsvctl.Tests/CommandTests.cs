using TcmuSharedVolume.Linux.DBus;

namespace TcmuSharedVolume.Cli.Tests;

public sealed class VolumeCreateTests : IDisposable
{
    private readonly Sandbox _s = new();

    public void Dispose() => _s.Dispose();

    [Fact]
    public void CreatesASparseFileOfTheGivenSize()
    {
        var path = Path.Combine(_s.Dir, "new.img");

        Assert.Equal(0, _s.Run("volume", "create", path, "--size", "10G"));

        Assert.Equal(10L << 30, new FileInfo(path).Length);
        Assert.Contains(path, _s.Out.ToString());
    }

    [Fact]
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    public void TheDiskIsReadableAndWritableByItsOwnerOnly()
    {
        // It holds a whole shared disk, database files included: not 0644 as the umask would leave it.
        var path = Path.Combine(_s.Dir, "private.img");
        Assert.Equal(0, _s.Run("volume", "create", path, "--size", "1M"));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
    }

    [Fact]
    public void RefusesToOverwriteAnExistingFile()
    {
        var path = Path.Combine(_s.Dir, "keep.img");
        File.WriteAllText(path, "precious");

        Assert.Equal(1, _s.Run("volume", "create", path, "--size", "1G"));

        Assert.Equal("precious", File.ReadAllText(path));
        Assert.Contains("refusing to overwrite", _s.ErrorLine());
    }

    [Theory]
    [InlineData("10X")]
    [InlineData("-1G")]
    [InlineData("1000")] // not a multiple of 512
    [InlineData("0")]
    public void ABadSizeIsAUsageErrorAndCreatesNothing(string size)
    {
        var path = Path.Combine(_s.Dir, "x.img");
        Assert.Equal(2, _s.Run("volume", "create", path, "--size", size));
        Assert.False(File.Exists(path));
        _s.ErrorLine();
    }

    [Fact]
    public void ADirectoryThatDoesNotExistIsAFailure()
    {
        Assert.Equal(1, _s.Run("volume", "create", Path.Combine(_s.Dir, "no", "such", "x.img"), "--size", "1M"));
        Assert.Contains("cannot create", _s.ErrorLine());
    }

    [Theory]
    [InlineData("4096", 4096L)]
    [InlineData("512K", 512L << 10)]
    [InlineData("10G", 10L << 30)]
    [InlineData("2t", 2L << 40)]
    [InlineData("1GiB", 1L << 30)]
    [InlineData("8MB", 8L << 20)]
    public void SizesAreReadTheWayTargetcliReadsThem(string text, long bytes) =>
        Assert.Equal(bytes, Volumes.ParseSize(text));
}

public sealed class StatusAndPrTests : IDisposable
{
    private readonly Sandbox _s = new();

    private static readonly AdminStatus Status = new("0.1.0",
    [
        new VolumeStatus("/srv/vol1.img", "5f2a9c", 10L << 30, 512,
            [
                new PathStatus("vol1-1", "iqn.2024-01.org.example:node1", "iqn.2024-01.org.example:shared,t,0x1", null),
                new PathStatus("vol1-2", null, null, "no ACL maps this backstore"),
            ],
            new ReservationStatus(7, true,
                [new RegistrationStatus("iqn.2024-01.org.example:node1", null, "00000000000000aa")],
                new PersistentReservationStatus("Write Exclusive - Registrants Only", null, "00000000000000aa"),
                null)),
    ]);

    public StatusAndPrTests() => _s.Admin = new FakeAdmin(AdminJsonContext.Serialize(Status));

    public void Dispose() => _s.Dispose();

    [Fact]
    public void StatusShowsVolumesPathsAndReservations()
    {
        Assert.Equal(0, _s.Run("status"));

        var text = _s.Out.ToString();
        Assert.Contains("tcmu-shared-volume 0.1.0: 1 volume(s)", text);
        Assert.Contains("/srv/vol1.img  serial 5f2a9c  10 GiB  block 512  2 path(s)", text);
        Assert.Contains("path vol1-2: UNBOUND (no ACL maps this backstore)", text);
        Assert.Contains("PR generation 7, APTPL, 1 registration(s)", text);
        Assert.Contains("reservation: Write Exclusive - Registrants Only, key 0x00000000000000aa", text);
        Assert.True(_s.Admin.Disposed);
    }

    [Fact]
    public void StatusJsonIsTheDaemonsJson()
    {
        Assert.Equal(0, _s.Run("status", "--json"));
        Assert.Equal(Status.Volumes[0].BackingPath, AdminJsonContext.Deserialize(_s.Out.ToString()).Volumes[0].BackingPath);
    }

    [Fact]
    public void PrShowFindsTheVolumeByPathOrSerial()
    {
        Assert.Equal(0, _s.Run("pr", "show", "5f2a9c"));
        Assert.Contains("key 0x00000000000000aa  iqn.2024-01.org.example:node1", _s.Out.ToString());

        Assert.Equal(0, _s.Run("pr", "show", "/srv/../srv/vol1.img", "--json"));
        Assert.Contains("\"generation\": 7", _s.Out.ToString());
    }

    [Fact]
    public void PrShowOfAnUnknownVolumeFails()
    {
        Assert.Equal(1, _s.Run("pr", "show", "/srv/none.img"));
        Assert.Contains("serves no volume '/srv/none.img'", _s.ErrorLine());
    }

    [Fact]
    public void PrClearWithoutConfirmationIsRefusedBeforeTheDaemonIsAsked()
    {
        Assert.Equal(2, _s.Run("pr", "clear", "/srv/vol1.img"));
        Assert.Contains("--yes-i-know", _s.ErrorLine());
        Assert.Empty(_s.Admin.Cleared);
    }

    [Fact]
    public void PrClearPassesTheCanonicalPathAndConfirmation()
    {
        Assert.Equal(0, _s.Run("pr", "clear", "/srv/./vol1.img", "--yes-i-know"));
        Assert.Equal([("/srv/vol1.img", true)], _s.Admin.Cleared);
        Assert.Contains("cleared 2 registrations", _s.Out.ToString());
    }

    [Fact]
    public void PrClearThatTheDaemonRefusesFails()
    {
        _s.Admin.ClearAnswer = (false, "no volume '/srv/x.img'");
        Assert.Equal(1, _s.Run("pr", "clear", "/srv/x.img", "--yes-i-know"));
        Assert.Equal("tsvctl: no volume '/srv/x.img'", _s.ErrorLine());
    }

    [Fact]
    public void AnUnreadableStatusIsAFailureNotACrash()
    {
        _s.Admin = new FakeAdmin("{not json");
        Assert.Equal(1, _s.Run("status"));
        Assert.Contains("not readable", _s.ErrorLine());
    }

    [Fact]
    public void AnUnknownCommandIsAUsageError()
    {
        Assert.Equal(2, _s.Run("frobnicate"));
        Assert.Equal("tsvctl: unknown command or argument 'frobnicate' (see tsvctl --help)", _s.ErrorLine());
    }

    [Fact]
    public void AnUnknownSubcommandNamesItAndPointsAtItsParentsHelp()
    {
        Assert.Equal(2, _s.Run("volume", "destroy", "/srv/vol1.img"));
        Assert.Equal("tsvctl: unknown command or argument 'destroy' (see tsvctl volume --help)", _s.ErrorLine());
    }

    [Fact]
    public void AMissingOptionIsNamedWithTheCommandsHelp()
    {
        Assert.Equal(2, _s.Run("volume", "create", "/srv/new.img"));
        Assert.Equal("tsvctl: Option '--size' is required (see tsvctl volume create --help)", _s.ErrorLine());
    }
}
