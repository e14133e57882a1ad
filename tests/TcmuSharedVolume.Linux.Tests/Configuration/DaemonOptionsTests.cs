using TcmuSharedVolume.Diagnostics;
using TcmuSharedVolume.Linux.Configuration;

namespace TcmuSharedVolume.Tests.Configuration;

public sealed class DaemonOptionsTests
{
    [Fact]
    public void EveryKeyIsParsedWithCommentsAndBlankLines()
    {
        var o = DaemonOptions.Parse("""
            # tcmu-shared-volume
            state_directory = /srv/tsv-state/   # trailing slash dropped

              log_level=debug
            worker_threads = 8
            default_block_size = 4096
            host_id = 2
            """, "test.conf");

        Assert.Equal("/srv/tsv-state", o.StateDirectory);
        Assert.Equal(LogLevel.Debug, o.LogLevel);
        Assert.Equal(8, o.WorkerThreads);
        Assert.Equal(4096, o.DefaultBlockSize);
        Assert.Equal(2, o.HostId);
    }

    [Fact]
    public void AnEmptyFileMeansTheDefaults()
    {
        var o = DaemonOptions.Parse("# nothing\n\n");
        Assert.Equal("/var/lib/tcmu-shared-volume", o.StateDirectory);
        Assert.Equal(LogLevel.Info, o.LogLevel);
        Assert.Equal(0, o.WorkerThreads);
        Assert.Equal(512, o.DefaultBlockSize);
    }

    [Fact]
    public void TheShippedFileParsesToTheDefaults()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (!File.Exists(Path.Combine(dir!.FullName, "TcmuSharedVolume.sln"))) dir = dir.Parent;
        var o = DaemonOptions.Load(Path.Combine(dir.FullName, "systemd/tcmu-shared-volume.conf"));
        Assert.Equal(DaemonOptions.Default, o);
        // Each commented default in the file is what the parser uses when it is uncommented.
        var uncommented = File.ReadAllText(Path.Combine(dir.FullName, "systemd/tcmu-shared-volume.conf"))
            .Replace("\n#state_directory", "\nstate_directory").Replace("\n#log_level", "\nlog_level")
            .Replace("\n#worker_threads", "\nworker_threads").Replace("\n#default_block_size", "\ndefault_block_size")
            .Replace("\n#host_id", "\nhost_id");
        Assert.Equal(DaemonOptions.Default, DaemonOptions.Parse(uncommented));
    }

    [Fact]
    public void AMissingFileMeansTheDefaults() =>
        Assert.Equal(DaemonOptions.Default, DaemonOptions.Load("/nonexistent/tsv.conf"));

    [Theory]
    [InlineData("log_level = info\nstate_dir = /x\n", "test.conf:2: unknown key 'state_dir'")]
    [InlineData("\n\nlog_level = loud\n", "test.conf:3: log_level must be one of")]
    [InlineData("worker_threads = -1\n", "test.conf:1: worker_threads must be an integer from 0 to 1024")]
    [InlineData("worker_threads = 4x\n", "test.conf:1: worker_threads must be an integer")]
    [InlineData("default_block_size = 520\n", "test.conf:1: default_block_size must be 512, 1024, 2048 or 4096")]
    [InlineData("host_id = 64\n", "test.conf:1: host_id must be an integer from 0 to 63")]
    [InlineData("state_directory = var/lib/x\n", "test.conf:1: state_directory must be an absolute path")]
    [InlineData("just words\n", "test.conf:1: expected 'key = value'")]
    [InlineData("= 5\n", "test.conf:1: expected 'key = value'")]
    [InlineData("log_level = info\nlog_level = debug\n", "test.conf:2: 'log_level' is set twice")]
    public void ErrorsNameTheLineAndTheProblem(string text, string expected)
    {
        var e = Assert.Throws<ConfigurationException>(() => DaemonOptions.Parse(text, "test.conf"));
        Assert.StartsWith(expected, e.Message);
    }
}
