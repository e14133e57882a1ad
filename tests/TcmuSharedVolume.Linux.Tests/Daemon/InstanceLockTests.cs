using System.Diagnostics;
using TcmuSharedVolume.Daemon;

namespace TcmuSharedVolume.Tests.Daemon;

/// <summary>Skips (visibly) where python3 is missing: it plays tcmu-runner, whose lock is a
/// classic fcntl(F_SETLK) record lock that .NET cannot take in a child process by itself.</summary>
public sealed class Python3FactAttribute : FactAttribute
{
    public Python3FactAttribute()
    {
        if (!File.Exists("/usr/bin/python3"))
            Skip = "needs /usr/bin/python3 to hold a classic fcntl record lock in another process";
    }
}

public sealed class InstanceLockTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tsv-lock-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string P(string name) => Path.Combine(_dir, name);

    [Fact]
    public void ASecondAcquisitionFailsWhileTheFirstIsHeldAndSucceedsAfter()
    {
        using (var first = InstanceLock.TryAcquire(P("d.lock"), out bool held1, out var error1))
        {
            Assert.NotNull(first);
            Assert.False(held1);
            Assert.Null(error1);

            var second = InstanceLock.TryAcquire(P("d.lock"), out bool held2, out var error2);
            Assert.Null(second);
            Assert.True(held2);
            Assert.Contains($"process {Environment.ProcessId}", error2);
        }
        using var again = InstanceLock.TryAcquire(P("d.lock"), out _, out var error3);
        Assert.NotNull(again);
        Assert.Null(error3);
    }

    [Fact]
    public void AFileThatCannotBeCreatedIsAnErrorNotAHeldLock()
    {
        var none = InstanceLock.TryAcquire(P("missing/d.lock"), out bool held, out var error);
        Assert.Null(none);
        Assert.False(held);
        Assert.Contains("cannot open", error);
    }

    [Fact]
    public void TheDaemonTakesBothLocksAndGivesItsOwnBackWhenTcmuRunnersIsHeld()
    {
        using var runner = InstanceLock.TryAcquire(P("tcmu.lock"), out _, out _);
        Assert.NotNull(runner);

        var (own, other, error) = TcmuSharedVolume.Daemon.Daemon.AcquireLocks(P("tsv.lock"), P("tcmu.lock"));
        Assert.Null(own);
        Assert.Null(other);
        Assert.Contains("tcmu-runner is running", error);
        // Our own lock was released on the way out.
        using var ours = InstanceLock.TryAcquire(P("tsv.lock"), out _, out _);
        Assert.NotNull(ours);
    }

    [Fact]
    public void ASecondDaemonIsToldAnotherIsRunning()
    {
        var (own, runner, error) = TcmuSharedVolume.Daemon.Daemon.AcquireLocks(P("tsv.lock"), P("tcmu.lock"));
        using var o = own;
        using var r = runner;
        Assert.Null(error);

        var (own2, runner2, error2) = TcmuSharedVolume.Daemon.Daemon.AcquireLocks(P("tsv.lock"), P("tcmu.lock"));
        Assert.Null(own2);
        Assert.Null(runner2);
        Assert.Contains("another tcmu-shared-volume is running", error2);
    }

    /// <summary>tcmu-runner locks /run/tcmu.lock with creat + fcntl(F_SETLK, F_WRLCK): a flock(2)
    /// would not see that lock; ours must, and must name the holder.</summary>
    [Python3Fact]
    public void AClassicRecordLockInAnotherProcessIsSeen()
    {
        string path = P("tcmu.lock");
        var psi = new ProcessStartInfo("/usr/bin/python3")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(
            "import fcntl, os, sys\n" +
            $"fd = os.open({System.Text.Json.JsonSerializer.Serialize(path)}, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)\n" +
            "fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n" +
            "print('locked', flush=True)\n" +
            "sys.stdin.read()\n");
        using var child = Process.Start(psi)!;
        try
        {
            Assert.Equal("locked", child.StandardOutput.ReadLine());
            var second = InstanceLock.TryAcquire(path, out bool held, out var error);
            Assert.Null(second);
            Assert.True(held);
            Assert.Contains($"process {child.Id}", error);
        }
        finally
        {
            child.StandardInput.Close();
            child.WaitForExit();
        }
        using var after = InstanceLock.TryAcquire(path, out _, out _);
        Assert.NotNull(after);
    }
}
