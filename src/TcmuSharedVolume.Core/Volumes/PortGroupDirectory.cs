using TcmuSharedVolume.Diagnostics;
using TcmuSharedVolume.Scsi;

namespace TcmuSharedVolume.Volumes;

/// <summary>A target port group of another host: its id and its ports' relative target port identifiers, ascending.</summary>
public sealed record PortGroupRecord(ushort Group, ushort[] Ports);

/// <summary>
/// Where the hosts that serve one volume record which target ports each of them has, so that
/// REPORT TARGET PORT GROUPS on any host lists every host's group (RBD: xattrs of the shared
/// table's object, docs/reservations.md §18). Calls may block on the cluster; they are never
/// made on a command's thread.
/// </summary>
public interface IPortGroupExchange
{
    /// <summary>Replaces this host's record of <paramref name="group"/>; no ports withdraws it.</summary>
    void PublishPorts(ushort group, IReadOnlyList<ushort> ports);

    /// <summary>Every host's record that has ports, this host's included.</summary>
    IReadOnlyList<PortGroupRecord> ReadPortGroups();
}

/// <summary>
/// Asymmetric logical unit access of one volume as this host reports it (SPC-4 5.15,
/// docs/architecture.md §12): one target port group per target host, numbered by host_id (1
/// for a host without one), holding that host's target ports of the volume. Every group is
/// Active/Optimized (symmetric active/active, the default), or, with <c>optimized_host=</c>,
/// only that host's group is and the others are Active/Non-optimized. Implicit ALUA only: the
/// states follow the configuration, never a SET TARGET PORT GROUPS.
/// <para>This host's group is built from its bound paths when it is reported. The other hosts'
/// groups of a volume they serve too come from an <see cref="IPortGroupExchange"/>: this host
/// publishes its ports when they change and reads the others' every
/// <see cref="RefreshInterval"/>, on a timer thread, so RTPG itself never waits on the cluster.</para>
/// </summary>
public sealed class PortGroupDirectory : IDisposable
{
    /// <summary>The group of a host without host_id.</summary>
    public const ushort SingleHostGroup = 1;

    /// <summary>The largest group, as the largest host_id: relative target port identifiers are
    /// <c>host_id * 1024 + local</c> in 16 bits (docs/operations.md §10).</summary>
    public const int MaxGroup = ushort.MaxValue / 1024;

    /// <summary>SPC-4 Table 211 ASYMMETRIC ACCESS STATE.</summary>
    public const byte ActiveOptimized = 0x0, ActiveNonOptimized = 0x1;

    /// <summary>How often the other hosts' records are read again.</summary>
    public static readonly TimeSpan RefreshInterval = TimeSpan.FromSeconds(10);

    private readonly Func<IReadOnlyList<VolumePath>> _paths;
    private readonly IPortGroupExchange? _exchange;
    private readonly Lock _lock = new();
    private PortGroupRecord[] _remote = [];
    private Timer? _timer;
    // Under _lock, on the timer's thread:
    private ushort[]? _published;
    private string? _problem;
    private bool _sharedGroupWarned;
    private bool _disposed;

    internal PortGroupDirectory(Func<IReadOnlyList<VolumePath>> paths, IPortGroupExchange? exchange)
    {
        _paths = paths;
        _exchange = exchange;
    }

    /// <summary>This host's target port group.</summary>
    public ushort LocalGroup { get; private set; } = SingleHostGroup;

    /// <summary>The one Active/Optimized group; null: every group is (symmetric).</summary>
    public ushort? OptimizedGroup { get; private set; }

    public static ushort GroupOfHost(int hostId) => hostId == 0 ? SingleHostGroup : (ushort)hostId;

    /// <summary>
    /// Sets this host's group (from host_id) and the access states, once, before the volume's
    /// first path serves; starts publishing this host's ports for a volume other hosts serve too.
    /// </summary>
    public void Configure(int hostId, int? optimizedHost)
    {
        if (hostId is < 0 or > MaxGroup) throw new ArgumentOutOfRangeException(nameof(hostId), hostId, $"host_id must be 0 to {MaxGroup}");
        if (optimizedHost is < 1 or > MaxGroup) throw new ArgumentOutOfRangeException(nameof(optimizedHost), optimizedHost, $"optimized_host must be 1 to {MaxGroup}");
        LocalGroup = GroupOfHost(hostId);
        OptimizedGroup = (ushort?)optimizedHost;
        if (_exchange is not null && _timer is null)
            _timer = new Timer(_ => OnTimer(), null, TimeSpan.Zero, RefreshInterval);
    }

    /// <summary>SPC-4 5.15.2.4/5: the state RTPG reports for a group.</summary>
    public byte StateOf(ushort group) => OptimizedGroup is { } optimized && optimized != group ? ActiveNonOptimized : ActiveOptimized;

    /// <summary>The other hosts' groups as last read, ascending by group; empty for a volume of this host alone.</summary>
    public PortGroupRecord[] Remote => Volatile.Read(ref _remote);

    /// <summary>
    /// This host's ports: the distinct relative target port identifiers of the volume's bound
    /// paths, ascending, into <paramref name="ports"/> (as many as fit); returns how many.
    /// Several initiators reach one target port through one TPG, so paths share identifiers.
    /// </summary>
    public static int LocalPorts(IReadOnlyList<VolumePath> paths, Span<ushort> ports)
    {
        int n = 0;
        for (int i = 0; i < paths.Count && n < ports.Length; i++)
        {
            if (paths[i].Nexus is not { } nexus) continue;
            ushort rtpi = nexus.Target.RelativeTargetPortId;
            if (ports[..n].IndexOf(rtpi) < 0) ports[n++] = rtpi;
        }
        ports[..n].Sort();
        return n;
    }

    /// <summary>A path joined, left, bound or unbound: publish at once rather than at the next refresh.</summary>
    internal void PathsChanged()
    {
        Volatile.Write(ref _changed, 1);
        _timer?.Change(TimeSpan.Zero, RefreshInterval);
    }

    private int _changed;

    /// <summary>
    /// The timer: one refresh at a time. One that finds another still waiting on the cluster
    /// leaves (that one goes round again if the paths changed meanwhile), so timer threads never
    /// pile up behind a slow cluster.
    /// </summary>
    private void OnTimer()
    {
        if (!_lock.TryEnter()) return;
        try { Refresh(); }
        finally { _lock.Exit(); }
    }

    /// <summary>Publishes this host's ports if they changed since, then reads every host's;
    /// again while the paths changed meanwhile.</summary>
    internal void Refresh()
    {
        lock (_lock)
        {
            do
            {
                Volatile.Write(ref _changed, 0);
                RefreshOnce();
            }
            while (Volatile.Read(ref _changed) != 0 && !_disposed);
        }
    }

    private void RefreshOnce()
    {
        if (_disposed || _exchange is null) return;
        try
        {
            var paths = _paths();
            var buffer = new ushort[paths.Count];
            var ports = buffer.AsSpan(0, LocalPorts(paths, buffer)).ToArray();
            if (_published is null || !ports.AsSpan().SequenceEqual(_published))
            {
                _exchange.PublishPorts(LocalGroup, ports);
                _published = ports;
            }
            var records = _exchange.ReadPortGroups();
            if (!_sharedGroupWarned && records.FirstOrDefault(r => r.Group == LocalGroup) is { } mine && !mine.Ports.AsSpan().SequenceEqual(ports))
            {
                _sharedGroupWarned = true;
                Log.Warning($"ALUA: another host records ports {string.Join(",", mine.Ports)} as target port group {LocalGroup}, " +
                            "this host's: give every host that serves the volume its own host_id");
            }
            Volatile.Write(ref _remote, [.. records.Where(r => r.Group != LocalGroup && r.Ports.Length > 0).OrderBy(r => r.Group)]);
            if (_problem is not null) Log.Notice("ALUA: the other hosts' target port groups can be read again");
            _problem = null;
        }
        catch (Exception e)
        {
            // Keep the last groups read: RTPG goes on answering, with this host's group current.
            if (e.Message != _problem) Log.Warning($"ALUA: cannot exchange target port groups with the other hosts: {e.Message}");
            _problem = e.Message;
        }
    }

    /// <summary>Stops the refresh and withdraws this host's ports, so that a host that no longer
    /// serves the volume is not listed by the others.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed) return;
            _disposed = true;
            _timer?.Dispose();
            if (_published is not { Length: > 0 }) return;
            try { _exchange!.PublishPorts(LocalGroup, []); }
            catch (Exception e) { Log.Warning($"ALUA: cannot withdraw target port group {LocalGroup}: {e.Message}"); }
        }
    }
}
