using FsCheck;
using FsCheck.Fluent;
using TcmuSharedVolume.Backends;
using TcmuSharedVolume.Reservations;
using TcmuSharedVolume.Tests.Reservations;
using TcmuSharedVolume.Volumes;

namespace TcmuSharedVolume.Tests.Backends.Rbd;

/// <summary>
/// The reference model of ModelTests against three hosts of one shared table in RADOS: each
/// nexus sends its commands through its own host, and after every command every host's table,
/// gate and unit attentions must be what the single-host model says.
/// </summary>
[Collection(CephCollection.Name)]
public sealed class ClusterModelTests(CephCluster ceph) : IDisposable
{
    private const int Hosts = 3;
    private readonly string _image = ceph.CreateImage("8M", features: "layering");
    private readonly List<RbdStore> _clients = [];

    public void Dispose()
    {
        foreach (var c in _clients) c.Dispose();
    }

    /// <summary>Changes that raise unit attentions and preempt, with few keys so that they match.</summary>
    private static readonly Gen<Op> OpGen =
        from kind in Gen.Frequency((3, Gen.Constant(OpKind.Register)), (3, Gen.Constant(OpKind.RegisterAndIgnore)),
            (3, Gen.Constant(OpKind.Reserve)), (2, Gen.Constant(OpKind.Release)), (1, Gen.Constant(OpKind.Clear)),
            (3, Gen.Constant(OpKind.Preempt)), (3, Gen.Constant(OpKind.PreemptAndAbort)), (1, Gen.Constant(OpKind.ReadKeys)))
        from nexus in Gen.Choose(0, 7)
        from own in Gen.Frequency((4, Gen.Constant(true)), (1, Gen.Constant(false)))
        from key in Gen.Choose(0, 2)
        from sark in Gen.Frequency((1, Gen.Constant(0)), (4, Gen.Choose(1, 2)))
        from type in Gen.Elements<byte>(1, 3, 5, 6, 7, 8)
        select new Op(kind, nexus, own, (ulong)key, (ulong)sark, type);

    [Fact]
    public void RandomRunsSpreadOverThreeHostsMatchTheReferenceModel()
    {
        var location = RbdLocation.Create(CephCluster.Pool, _image, ceph.ConfPath);
        for (int h = 0; h < Hosts; h++) _clients.Add(RbdStore.Open(location));
        int run = 0;
        var runs = Gen.ListOf(OpGen).Select(l => l.ToArray()).ToArbitrary();
        var property = Prop.ForAll(runs, ops =>
        {
            // A fresh table per run, each host its own client.
            string table = $"{RbdReservationStore.ObjectName(_image)}.run{Interlocked.Increment(ref run)}";
            var stores = _clients.Select(c => new RbdReservationStore(c, table)).ToArray();
            try
            {
                var hosts = stores.Select(s => new PrTestKit(8, (bound, drain) => new VolumeReservations(s, bound, drain))).ToArray();
                var driver = new ModelDriver(hosts);
                foreach (var op in ops)
                {
                    driver.Step(op);
                    // The next nexus is on the next host: its unit attentions came through the table.
                    driver.Step(op with { Kind = OpKind.TakeUnitAttentions, Nexus = (op.Nexus + 1) % 8 });
                }
            }
            finally
            {
                foreach (var s in stores) s.Dispose();
                ceph.Rados("-p", CephCluster.Pool, "rm", table);
            }
        });
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(40).WithEndSize(40), property);
        Assert.True(run >= 40);
    }
}
