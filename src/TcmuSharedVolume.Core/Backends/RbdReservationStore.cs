using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Text;
using TcmuSharedVolume.Diagnostics;
using TcmuSharedVolume.Interop;
using TcmuSharedVolume.Reservations;
using TcmuSharedVolume.Volumes;

namespace TcmuSharedVolume.Backends;

/// <summary>
/// The reservation table of an RBD volume that several target hosts serve, in one RADOS object
/// beside the image (<c>tsv.pr.&lt;image&gt;</c> in its pool), with the protocol of
/// docs/reservations.md §18:
/// <list type="bullet">
/// <item>the object's data is the table (<see cref="ClusterTableCodec"/>), its xattr
/// <c>tsv.version</c> the version; a commit is one write op guarded by cmpxattr on the version
/// it was decided on, so two hosts can never both win (the loser gets -ECANCELED);</item>
/// <item>every host watches the object; a commit is announced with notify2, whose payload is the
/// committed table and change, and each host acks once it has applied and drained it;</item>
/// <item>a host that did not ack in time is blocklisted by the issuer (its address is kept in
/// the xattr <c>tsv.host.&lt;global id&gt;</c>), after which the OSDs refuse its writes;</item>
/// <item>a host that finds itself blocklisted builds a new client, reads the table and watches
/// again before its image serves again (<see cref="RbdStore.Reconnect"/>);</item>
/// <item>ALUA: each host records its target ports of the volume in the xattr
/// <c>tsv.ports.&lt;target port group&gt;</c>, which every host's REPORT TARGET PORT GROUPS lists
/// (<see cref="IPortGroupExchange"/>).</item>
/// </list>
/// It uses the volume's own <see cref="RbdStore"/> client: blocklisting that one client fences
/// the data path and the table together.
/// </summary>
public sealed unsafe class RbdReservationStore : IClusterReservationStore, IPortGroupExchange
{
    public const string ObjectPrefix = "tsv.pr.";
    private const string VersionXattr = "tsv.version";
    private const string HostXattrPrefix = "tsv.host.";
    private const string PortsXattrPrefix = "tsv.ports.";

    /// <summary>Image metadata key and table object xattr of the volume's identity: "&lt;serial&gt; &lt;NAA, 16 hex digits&gt;".</summary>
    public const string IdentityKey = "tsv.identity";
    private const int ENOENT = 2, EEXIST = 17, ETIMEDOUT = 110, ECANCELED = 125;

    private readonly RbdStore _rbd;
    private readonly string _oid;
    // Tells this instance's own notifications from the others'; a fresh one per instance.
    private readonly ulong _origin = (ulong)Random.Shared.NextInt64() | 1;
    private readonly BlockingCollection<Notification?> _inbox = [];
    private readonly Thread _worker;
    private GCHandle _self;
    private Func<ClusterTable, bool>? _apply;
    private ulong _cookie;
    private ulong _globalId;
    private int _rejoinQueued;
    private int _disposed;
    private long _lostRaces;
    private long _fencedHosts;
    private long _rejoins;

    /// <summary>A notification to apply; null asks the worker to rejoin.</summary>
    private sealed record Notification(ulong NotifyId, ulong Cookie, byte[] Payload);

    /// <param name="objectName">The table's object; by default <see cref="ObjectName"/> of the image.</param>
    public RbdReservationStore(RbdStore rbd, string? objectName = null)
    {
        _rbd = rbd;
        _oid = objectName ?? ObjectName(rbd.Location.Image);
        _worker = new Thread(Work) { IsBackground = true, Name = "tsv-pr-" + rbd.Location.Image };
        rbd.Blocklisted += QueueRejoin;
    }

    public static string ObjectName(string image) => ObjectPrefix + image;

    /// <summary>How long an issuer waits for the other hosts' acks before it fences the silent
    /// ones; keep it well below the initiators' command timeout (docs/reservations.md §18: 5 s of 30 s).</summary>
    public TimeSpan NotifyTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>How long a fenced host stays blocklisted; 0: the cluster's default (one hour).
    /// A fenced host rejoins with a new client at once, so this only bounds the list.</summary>
    public uint BlocklistExpireSeconds { get; init; }

    /// <summary>Commits lost to another host (each one decided again).</summary>
    public long LostRaces => Interlocked.Read(ref _lostRaces);

    /// <summary>Hosts this one blocklisted because they did not acknowledge a change.</summary>
    public long FencedHosts => Interlocked.Read(ref _fencedHosts);

    /// <summary>Times this host rejoined after being fenced.</summary>
    public long Rejoins => Interlocked.Read(ref _rejoins);

    /// <summary>Test hooks: a host whose notification handling hangs; a race just before the guarded write.</summary>
    internal Action? BeforeApply { get; set; }
    internal Action? BeforeCommit { get; set; }

    /// <summary>
    /// The volume's identity, the same on every host (docs/architecture.md §5): kept in the
    /// image's metadata (<see cref="IdentityKey"/>). The first host to serve the image makes it
    /// from <paramref name="candidate"/>, race-free: the exclusive create of the table object
    /// carries it, so of hosts starting at once exactly one candidate wins, and every host then
    /// writes the winner into the metadata (the same value, whoever is last).
    /// </summary>
    public static VolumeIdentity EstablishIdentity(RbdStore rbd, VolumeIdentity candidate)
    {
        if (rbd.GetMetadata(IdentityKey) is { } kept) return ParseIdentity(kept, $"image metadata {IdentityKey}");
        string oid = ObjectName(rbd.Location.Image);
        string winner = rbd.Rados((_, ioctx) =>
        {
            EnsureExists(ioctx, oid, candidate);
            var buffer = new byte[256];
            int n;
            fixed (byte* b = buffer)
                n = LibRados.rados_getxattr(ioctx, oid, IdentityKey, b, (nuint)buffer.Length);
            if (n < 0) throw new ReservationStoreException($"cannot read {IdentityKey} of {oid}: {RbdStore.Describe(-n)}");
            return Encoding.ASCII.GetString(buffer, 0, n);
        });
        var identity = ParseIdentity(winner, $"{oid} xattr {IdentityKey}");
        rbd.SetMetadata(IdentityKey, winner);
        return identity;
    }

    private static string FormatIdentity(VolumeIdentity id) => $"{id.UnitSerial} {id.NaaLocallyAssigned:x16}";

    private static VolumeIdentity ParseIdentity(string text, string where)
    {
        var parts = text.Split(' ');
        try
        {
            if (parts.Length == 2 && ulong.TryParse(parts[1], System.Globalization.NumberStyles.HexNumber, null, out ulong naa))
                return new VolumeIdentity(parts[0], naa);
        }
        catch (ArgumentException) { }
        throw new ReservationStoreException($"{where} is \"{text}\", not \"<serial> <NAA 3h designator in hex>\"");
    }

    public ClusterTable Join(Func<ClusterTable, bool> apply)
    {
        if (_apply is not null) throw new InvalidOperationException("already joined");
        _apply = apply;
        _self = GCHandle.Alloc(this);
        _worker.Start();
        return _rbd.Rados(Attach);
    }

    /// <summary>Watch first, then read: a change committed in between is then both read and notified (and applied once, by version).</summary>
    private ClusterTable Attach(nint cluster, nint ioctx)
    {
        EnsureExists(ioctx, _oid, VolumeIdentity.NewRandom(Guid.NewGuid()));
        ulong cookie;
        Check(LibRados.rados_watch2(ioctx, _oid, &cookie, &OnNotify, &OnWatchError, GCHandle.ToIntPtr(_self)), "watch");
        _cookie = cookie;
        _globalId = LibRados.rados_get_instance_id(cluster);
        // Where the issuer of a change finds this client's address to blocklist it.
        byte* addrs;
        Check(LibRados.rados_getaddrs(cluster, &addrs), "getaddrs");
        try
        {
            int length = 0;
            while (addrs[length] != 0) length++;
            Check(LibRados.rados_setxattr(ioctx, _oid, HostXattrPrefix + _globalId, addrs, (nuint)length), "record this host's address");
        }
        finally { NativeMemory.Free(addrs); }
        return Read(ioctx);
    }

    /// <summary>
    /// The empty table at version 0, made by whichever host comes first (exclusive create), with
    /// the volume's identity (<paramref name="identity"/> if this host is first).
    /// </summary>
    private static void EnsureExists(nint ioctx, string oid, VolumeIdentity identity)
    {
        var data = ClusterTableCodec.Encode(ClusterTable.Initial, 0);
        var version = VersionText(0);
        var id = Encoding.ASCII.GetBytes(FormatIdentity(identity));
        nint op = LibRados.rados_create_write_op();
        try
        {
            LibRados.rados_write_op_create(op, LibRados.LIBRADOS_CREATE_EXCLUSIVE, null);
            int r;
            fixed (byte* v = version)
            fixed (byte* i = id)
            fixed (byte* d = data)
            {
                LibRados.rados_write_op_setxattr(op, VersionXattr, v, (nuint)version.Length);
                LibRados.rados_write_op_setxattr(op, IdentityKey, i, (nuint)id.Length);
                LibRados.rados_write_op_write_full(op, d, (nuint)data.Length);
                r = LibRados.rados_write_op_operate(op, ioctx, oid, null, 0);
            }
            if (r != -EEXIST && r < 0)
                throw new ReservationStoreException($"cannot create the shared reservation table {oid}: {RbdStore.Describe(-r)}");
        }
        finally { LibRados.rados_release_write_op(op); }
    }

    /// <summary>The whole object in one read (one write op replaced it whole: never a mix of two versions).</summary>
    private ClusterTable Read(nint ioctx)
    {
        for (int size = 16 << 10; ; size *= 4)
        {
            var buffer = new byte[size];
            int n;
            fixed (byte* b = buffer)
                n = LibRados.rados_read(ioctx, _oid, b, (nuint)size, 0);
            if (n == -ENOENT)
            {
                EnsureExists(ioctx, _oid, VolumeIdentity.NewRandom(Guid.NewGuid()));
                continue;
            }
            Check(n, "read");
            if (n < size) return ClusterTableCodec.Decode(buffer.AsSpan(0, n)).Table;
        }
    }

    public bool TryCommit(ClusterTable next, out ClusterTable current)
    {
        BeforeCommit?.Invoke();
        var data = ClusterTableCodec.Encode(next, _origin);
        var expected = VersionText(next.Version - 1);
        var version = VersionText(next.Version);
        ClusterTable? newer = null;
        Call((_, ioctx) =>
        {
            nint op = LibRados.rados_create_write_op();
            try
            {
                int r;
                fixed (byte* e = expected)
                fixed (byte* v = version)
                fixed (byte* d = data)
                {
                    LibRados.rados_write_op_cmpxattr(op, VersionXattr, LibRados.LIBRADOS_CMPXATTR_OP_EQ, e, (nuint)expected.Length);
                    LibRados.rados_write_op_setxattr(op, VersionXattr, v, (nuint)version.Length);
                    LibRados.rados_write_op_write_full(op, d, (nuint)data.Length);
                    r = LibRados.rados_write_op_operate(op, ioctx, _oid, null, 0);
                }
                if (r == -ECANCELED)
                {
                    newer = Read(ioctx);
                    return true;
                }
                Check(r, "commit");
                return true;
            }
            finally { LibRados.rados_release_write_op(op); }
        });
        if (newer is not null)
        {
            Interlocked.Increment(ref _lostRaces);
            Log.Info($"reservations: {_oid}: another host committed version {newer.Version} first; deciding again");
            current = newer;
            return false;
        }
        current = next;
        return true;
    }

    public bool Announce(ClusterTable committed)
    {
        var payload = ClusterTableCodec.Encode(committed, _origin);
        return Call((cluster, ioctx) =>
        {
            byte* reply = null;
            nuint replyLength = 0;
            int r;
            fixed (byte* p = payload)
                r = LibRados.rados_notify2(ioctx, _oid, p, payload.Length, (ulong)NotifyTimeout.TotalMilliseconds, &reply, &replyLength);
            List<(ulong Id, ulong Cookie)> silent;
            try
            {
                silent = reply is null ? [] : TimedOut(new ReadOnlySpan<byte>(reply, (int)replyLength));
            }
            finally
            {
                if (reply is not null) LibRados.rados_buffer_free(reply);
            }
            if (r == 0) return true;
            if (r != -ETIMEDOUT) Check(r, "notify");
            foreach (var (id, cookie) in silent)
            {
                if (id == _globalId && cookie == _cookie) continue; // our own watch: this host already applied it
                if (!Fence(cluster, ioctx, id, committed.Version)) return false;
            }
            // The blocklist must be in force before GOOD: the OSD map that carries it.
            Check(LibRados.rados_wait_for_latest_osdmap(cluster), "wait for the OSD map");
            return true;
        });
    }

    /// <summary>notify2's reply: acks (id, cookie, payload) then the watchers that timed out (id, cookie).</summary>
    private static List<(ulong, ulong)> TimedOut(ReadOnlySpan<byte> reply)
    {
        uint acks = BinaryPrimitives.ReadUInt32LittleEndian(reply);
        int at = 4;
        for (uint i = 0; i < acks; i++)
            at += 16 + 4 + (int)BinaryPrimitives.ReadUInt32LittleEndian(reply[(at + 16)..]);
        uint missed = BinaryPrimitives.ReadUInt32LittleEndian(reply[at..]);
        at += 4;
        var list = new List<(ulong, ulong)>((int)missed);
        for (uint i = 0; i < missed; i++, at += 16)
            list.Add((BinaryPrimitives.ReadUInt64LittleEndian(reply[at..]), BinaryPrimitives.ReadUInt64LittleEndian(reply[(at + 8)..])));
        return list;
    }

    /// <summary>docs/reservations.md §18 step 4: blocklists the client that did not acknowledge.</summary>
    private bool Fence(nint cluster, nint ioctx, ulong globalId, ulong version)
    {
        var address = new byte[512];
        int n;
        fixed (byte* a = address)
            n = LibRados.rados_getxattr(ioctx, _oid, HostXattrPrefix + globalId, a, (nuint)address.Length);
        if (n < 0)
        {
            Log.Error($"reservations: {_oid}: client {globalId} did not acknowledge version {version} and its address is unknown ({RbdStore.Describe(-n)}); cannot fence it");
            return false;
        }
        string text = Encoding.UTF8.GetString(address, 0, n);
        int r = LibRados.rados_blocklist_add(cluster, BlocklistAddress(text), BlocklistExpireSeconds);
        if (r < 0)
        {
            Log.Error($"reservations: {_oid}: blocklisting client {globalId} ({text}) failed: {RbdStore.Describe(-r)}");
            return false;
        }
        Interlocked.Increment(ref _fencedHosts);
        Log.Warning($"reservations: {_oid}: client {globalId} ({text}) did not acknowledge version {version} within {NotifyTimeout.TotalSeconds:0.#} s; blocklisted it");
        return true;
    }

    /// <summary>rados_getaddrs gives "[v2:ip:port/nonce,v1:...]" or "ip:port/nonce"; blocklist add takes one address.</summary>
    internal static string BlocklistAddress(string addrs)
    {
        var first = addrs.Trim().TrimStart('[').TrimEnd(']').Split(',')[0];
        int colon = first.IndexOf(':');
        return first.StartsWith("v1:") || first.StartsWith("v2:") || first.StartsWith("any:") ? first[(colon + 1)..] : first;
    }

    // ------------------------------------------------------------------ ALUA: each host's ports

    /// <summary>The value is the relative target port identifiers in decimal, comma-separated
    /// (readable with <c>rados getxattr</c>); empty once the host withdrew.</summary>
    public void PublishPorts(ushort group, IReadOnlyList<ushort> ports)
    {
        var value = Encoding.ASCII.GetBytes(string.Join(',', ports));
        Call((_, ioctx) =>
        {
            fixed (byte* v = value)
                Check(LibRados.rados_setxattr(ioctx, _oid, PortsXattrPrefix + group, v, (nuint)value.Length), "record this host's target ports in");
            return true;
        });
    }

    public IReadOnlyList<PortGroupRecord> ReadPortGroups() => Call((_, ioctx) =>
    {
        nint iterator;
        Check(LibRados.rados_getxattrs(ioctx, _oid, &iterator), "read the hosts' target ports from");
        var records = new List<PortGroupRecord>();
        try
        {
            while (true)
            {
                byte* name, value;
                nuint length;
                Check(LibRados.rados_getxattrs_next(iterator, &name, &value, &length), "read the hosts' target ports from");
                if (name is null) return records;
                string key = Marshal.PtrToStringUTF8((nint)name) ?? "";
                if (!key.StartsWith(PortsXattrPrefix, StringComparison.Ordinal)) continue;
                if (length == 0) continue; // withdrawn (and the value pointer may be null)
                string text = Encoding.ASCII.GetString(value, (int)length);
                if (ParsePorts(key[PortsXattrPrefix.Length..], text) is { } record) records.Add(record);
                else Log.Warning($"reservations: {_oid}: ignoring xattr {key} = \"{text}\", not a target port group and its ports");
            }
        }
        finally { LibRados.rados_getxattrs_end(iterator); }
    });

    /// <summary>A group and its ports, or null if either is not one.</summary>
    internal static PortGroupRecord? ParsePorts(string group, string ports)
    {
        if (!ushort.TryParse(group, System.Globalization.NumberStyles.None, null, out ushort id) || id is 0 or > PortGroupDirectory.MaxGroup)
            return null;
        if (ports.Length == 0) return null;
        var list = new List<ushort>();
        foreach (var part in ports.Split(','))
        {
            if (!ushort.TryParse(part, System.Globalization.NumberStyles.None, null, out ushort rtpi) || rtpi == 0) return null;
            list.Add(rtpi);
        }
        list.Sort();
        return new PortGroupRecord(id, [.. list.Distinct()]);
    }

    // ------------------------------------------------------------------ notifications

    [UnmanagedCallersOnly]
    private static void OnNotify(nint arg, ulong notifyId, ulong cookie, ulong notifierId, void* data, nuint length)
    {
        try
        {
            var self = (RbdReservationStore)GCHandle.FromIntPtr(arg).Target!;
            var payload = new ReadOnlySpan<byte>(data, (int)length).ToArray();
            ulong origin;
            try { origin = ClusterTableCodec.Decode(payload).Origin; }
            catch (ReservationStoreException e)
            {
                Log.Warning($"reservations: {self._oid}: ignoring a notification that is not a table from client {notifierId}: {e.Message}");
                origin = self._origin;
            }
            // Our own change is in force here already: ack at once, never behind a drain.
            if (origin == self._origin) self.Ack(notifyId, cookie);
            else if (!self._inbox.TryAdd(new Notification(notifyId, cookie, payload)))
                Log.Warning($"reservations: {self._oid}: notification after close dropped");
        }
        catch (Exception e)
        {
            Log.Error($"reservations: watch callback failed: {e.Message}");
        }
    }

    [UnmanagedCallersOnly]
    private static void OnWatchError(nint arg, ulong cookie, int error)
    {
        try
        {
            var self = (RbdReservationStore)GCHandle.FromIntPtr(arg).Target!;
            Log.Warning($"reservations: {self._oid}: watch lost ({RbdStore.Describe(-error)}); rejoining");
            self.QueueRejoin();
        }
        catch (Exception e)
        {
            Log.Error($"reservations: watch error callback failed: {e.Message}");
        }
    }

    private void Ack(ulong notifyId, ulong cookie)
    {
        try
        {
            Call((_, ioctx) =>
            {
                Check(LibRados.rados_notify_ack(ioctx, _oid, notifyId, cookie, null, 0), "acknowledge");
                return true;
            });
        }
        catch (Exception e)
        {
            Log.Warning($"reservations: {_oid}: acknowledging notification {notifyId} failed: {e.Message}");
        }
    }

    private void QueueRejoin()
    {
        if (Volatile.Read(ref _disposed) != 0 || Interlocked.Exchange(ref _rejoinQueued, 1) != 0) return;
        try { _inbox.TryAdd(null); }
        catch (InvalidOperationException) { } // closing
    }

    /// <summary>The store's thread: applies other hosts' changes in order and acks them; rejoins when fenced.</summary>
    private void Work()
    {
        foreach (var n in _inbox.GetConsumingEnumerable())
        {
            try
            {
                if (n is null)
                {
                    Rejoin();
                    continue;
                }
                BeforeApply?.Invoke();
                var table = ClusterTableCodec.Decode(n.Payload).Table;
                if (_apply!(table)) Ack(n.NotifyId, n.Cookie);
            }
            catch (Exception e)
            {
                Log.Error($"reservations: {_oid}: applying a change from another host failed, not acknowledged: {e.Message}");
            }
        }
    }

    /// <summary>
    /// Fenced, or the watch was lost (then notifications may have been missed, and the issuer
    /// fenced this host anyway): new client, table read, watch, and only then the image serves.
    /// </summary>
    private void Rejoin()
    {
        Volatile.Write(ref _rejoinQueued, 0);
        Log.Warning($"reservations: {_oid}: this host was fenced or lost its watch; reconnecting before it serves again");
        while (Volatile.Read(ref _disposed) == 0)
        {
            try
            {
                _rbd.Reconnect((cluster, ioctx) =>
                {
                    var table = Attach(cluster, ioctx);
                    _apply!(table with { Change = TableChangeEffects.None });
                    return true;
                });
                Interlocked.Increment(ref _rejoins);
                Log.Notice($"reservations: {_oid}: rejoined as client {_globalId}");
                return;
            }
            catch (ObjectDisposedException) { return; }
            catch (Exception e)
            {
                Log.Error($"reservations: {_oid}: rejoining failed, retrying in 1 s: {e.Message}");
                Thread.Sleep(1000);
            }
        }
    }

    /// <summary>A RADOS call on the volume's client; fenced or rejoining is <see cref="ClusterTableUnavailableException"/>.</summary>
    private T Call<T>(RbdStore.RadosCall<T> call)
    {
        try { return _rbd.Rados(call); }
        catch (BackingStoreException e) when (e.Errno == RbdStore.ESHUTDOWN)
        {
            _rbd.ReportBlocklisted();
            throw new ClusterTableUnavailableException(e.Message, e);
        }
    }

    private void Check(int r, string what)
    {
        if (r >= 0) return;
        if (-r == RbdStore.ESHUTDOWN) throw new BackingStoreException($"{what} {_oid}: {RbdStore.Describe(-r)}", -r);
        throw new ReservationStoreException($"cannot {what} the shared reservation table {_oid}: {RbdStore.Describe(-r)}");
    }

    private static byte[] VersionText(ulong version) => Encoding.ASCII.GetBytes(version.ToString("x16"));

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _rbd.Blocklisted -= QueueRejoin;
        if (_apply is null) return;
        try
        {
            _rbd.Rados((cluster, ioctx) =>
            {
                LibRados.rados_unwatch2(ioctx, _cookie);
                LibRados.rados_watch_flush(cluster);
                return true;
            });
        }
        catch (Exception e) when (e is BackingStoreException or ObjectDisposedException)
        {
            // Not unwatched (fenced): librados may still call back until the client is shut
            // down, so the handle that the callbacks resolve stays allocated.
            _inbox.CompleteAdding();
            return;
        }
        _inbox.CompleteAdding();
        if (Thread.CurrentThread != _worker) _worker.Join();
        _self.Free();
    }
}
