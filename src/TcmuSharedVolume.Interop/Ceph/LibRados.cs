namespace TcmuSharedVolume.Interop;

/// <summary>
/// librados (Ceph's object store client), one declaration per function, each in its own file.
/// Calls return 0 or a negative errno; they do not set errno.
/// </summary>
public static unsafe partial class LibRados
{
    internal const string Library = "librados.so.2";

    /// <summary>librados.h LIBRADOS_OP_FLAG_FADVISE_FUA: the write must be durable when it completes.</summary>
    public const int LIBRADOS_OP_FLAG_FADVISE_FUA = 0x80;

    /// <summary>librados.h: rados_write_op_create fails with -EEXIST if the object exists.</summary>
    public const int LIBRADOS_CREATE_EXCLUSIVE = 1;

    /// <summary>librados.h LIBRADOS_CMPXATTR_OP_EQ.</summary>
    public const byte LIBRADOS_CMPXATTR_OP_EQ = 1;
}
