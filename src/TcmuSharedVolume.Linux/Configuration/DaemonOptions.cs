using TcmuSharedVolume.Diagnostics;
using TcmuSharedVolume.Linux.Metrics;

namespace TcmuSharedVolume.Linux.Configuration;

/// <summary>A config file error: where, and what is wrong.</summary>
public sealed class ConfigurationException(string message) : Exception(message);

/// <summary>
/// /etc/tcmu-shared-volume/tcmu-shared-volume.conf: <c>key = value</c> lines, <c>#</c> comments
/// (whole line or after the value), blank lines ignored. An unknown key or a bad value is an
/// error naming the line: a typo must not silently fall back to a default. The daemon parses it
/// at start and again on SIGHUP (a failed reload keeps the options in force).
/// </summary>
public sealed record DaemonOptions
{
    public const string DefaultPath = "/etc/tcmu-shared-volume/tcmu-shared-volume.conf";

    /// <summary>Reservation tables and volume state (systemd StateDirectory=).</summary>
    public string StateDirectory { get; init; } = "/var/lib/tcmu-shared-volume";

    public LogLevel LogLevel { get; init; } = LogLevel.Info;

    /// <summary>Commands that may run at once (the ring loop has one thread more); 0 = two per CPU.</summary>
    public int WorkerThreads { get; init; }

    /// <summary>Logical block size of a volume whose config string does not say otherwise.</summary>
    public int DefaultBlockSize { get; init; } = 512;

    /// <summary>
    /// This host's number among the target hosts that serve the same RBD volumes, 1 to
    /// <see cref="TcmuSharedVolume.Linux.Configfs.TargetConfigfs.MaxHostNumber"/>; 0 (the
    /// default) for a host that serves alone. It makes relative target port identifiers unique
    /// across hosts (docs/reservations.md §18).
    /// </summary>
    public int HostId { get; init; }

    /// <summary>Where the Prometheus metrics endpoint listens; null (the default): no endpoint.</summary>
    public MetricsEndpoint? MetricsListen { get; init; }

    public static DaemonOptions Default { get; } = new();

    /// <summary>Reads <paramref name="path"/>; a missing file means all defaults.</summary>
    public static DaemonOptions Load(string path = DefaultPath)
    {
        if (!File.Exists(path)) return Default;
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigurationException($"{path}: cannot read: {e.Message}");
        }
        return Parse(text, path);
    }

    public static DaemonOptions Parse(string text, string source = DefaultPath)
    {
        var options = Default;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        int lineNumber = 0;
        foreach (var raw in text.Split('\n'))
        {
            lineNumber++;
            var line = StripComment(raw).Trim();
            if (line.Length == 0) continue;

            string Where() => $"{source}:{lineNumber}";
            int eq = line.IndexOf('=');
            if (eq <= 0)
                throw new ConfigurationException($"{Where()}: expected 'key = value', got '{line}'");
            var key = line[..eq].Trim();
            var value = line[(eq + 1)..].Trim();
            if (value.Length >= 2 && value[0] == '"' && value[^1] == '"') value = value[1..^1];
            if (!seen.Add(key))
                throw new ConfigurationException($"{Where()}: '{key}' is set twice");

            options = key switch
            {
                "state_directory" => options with { StateDirectory = AbsolutePath(value, Where) },
                "log_level" => options with { LogLevel = Level(value, Where) },
                "worker_threads" => options with { WorkerThreads = Int(value, 0, 1024, key, Where) },
                "default_block_size" => options with { DefaultBlockSize = BlockSize(value, Where) },
                "host_id" => options with { HostId = Int(value, 0, Configfs.TargetConfigfs.MaxHostNumber, key, Where) },
                "metrics_listen" => options with { MetricsListen = Metrics(value, Where) },
                _ => throw new ConfigurationException(
                    $"{Where()}: unknown key '{key}' (known: state_directory, log_level, worker_threads, default_block_size, host_id, metrics_listen)"),
            };
        }
        return options;
    }

    private static string StripComment(string line)
    {
        int hash = line.IndexOf('#');
        return hash < 0 ? line : line[..hash];
    }

    private static string AbsolutePath(string value, Func<string> where) =>
        value.StartsWith('/') ? value.TrimEnd('/') is { Length: > 0 } p ? p : "/" :
        throw new ConfigurationException($"{where()}: state_directory must be an absolute path, got '{value}'");

    private static LogLevel Level(string value, Func<string> where)
    {
        if (Log.TryParseLevel(value, out var level)) return level;
        throw new ConfigurationException($"{where()}: log_level must be one of error, warning, notice, info, debug; got '{value}'");
    }

    private static int Int(string value, int min, int max, string key, Func<string> where)
    {
        if (int.TryParse(value, System.Globalization.NumberStyles.None, null, out int n) && n >= min && n <= max) return n;
        throw new ConfigurationException($"{where()}: {key} must be an integer from {min} to {max}, got '{value}'");
    }

    private static MetricsEndpoint? Metrics(string value, Func<string> where)
    {
        if (value.Length == 0 || value == "off") return null;
        if (MetricsEndpoint.TryParse(value, out var endpoint, out var error)) return endpoint;
        throw new ConfigurationException($"{where()}: metrics_listen: {error}");
    }

    private static int BlockSize(string value, Func<string> where)
    {
        if (int.TryParse(value, out int n) && n is 512 or 1024 or 2048 or 4096) return n;
        throw new ConfigurationException($"{where()}: default_block_size must be 512, 1024, 2048 or 4096, got '{value}'");
    }
}
